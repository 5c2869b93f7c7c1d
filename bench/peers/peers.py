#!/usr/bin/python3
# bench/peers/peers.py: runs weir, nghttpx, h2o, HAProxy and nginx as h2 proxies in one run and
# writes raw JSON lines to bench/results/peers-raw/ (see bench/peers/README.md).
#
# Called by bench/run-peers, which installs the peers and builds weir first. Every server runs
# by hand with its own config (bench/peers/conf/*) on free loopback ports. The proxy is pinned
# to CPU 0 (CPUs 0-1 with 2 workers); h2load, the node client and the upstreams to CPU 1.
#
# Phases: throughput (h2load -c 64 -m 10 per proxy, body, frontend, upstream protocol,
# workers, repetition; the "h1" frontend is HTTP/1.1 on the cleartext port, h2load --h1 -c 64
# -m 1: one request at a time per connection, keep-alive, no pipelining), ceiling (h2o serving the files itself), idle connections (2,000 h2c
# and 2,000 TLS sessions after one GET each, RSS before/open/after close), active streams
# (1,000 slow streams through each proxy).
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, '..', '..'))
CONF = os.path.join(HERE, 'conf')
TICK = os.sysconf('SC_CLK_TCK')
PAGE_KB = os.sysconf('SC_PAGE_SIZE') // 1024

# A command prefix for the proxy (valgrind in the profile phase); empty for measurements.
WRAP = []
PROXIES = ['weir', 'nghttpx', 'h2o', 'haproxy', 'nginx']
# Which upstream protocols each proxy can speak (h2o 2.2 and nginx 1.22: HTTP/1.1 only).
UPSTREAMS = {'weir': ['h1', 'h2c'], 'nghttpx': ['h1', 'h2c'], 'haproxy': ['h1', 'h2c'],
             'h2o': ['h1'], 'nginx': ['h1']}
SMALL_LEN = 100
LARGE_LEN = 16384


def log(msg):
    sys.stderr.write('[peers %s] %s\n' % (time.strftime('%H:%M:%S'), msg))
    sys.stderr.flush()


def free_port():
    # The peers (unlike weir) cannot report a kernel-chosen port, so take one the kernel picks
    # and release it just before the server binds it.
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(pred, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise RuntimeError('timed out waiting for ' + what)


def children_map():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(')') + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    """pid and all its descendants (nginx/nghttpx workers, h2o's children)."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_s(pids):
    total = 0
    for p in pids:
        try:
            with open('/proc/%d/stat' % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(')') + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICK


def stat_split(pids):
    """(user seconds, system seconds, minor page faults) summed over pids."""
    user = sys_ = flt = 0
    for p in pids:
        try:
            with open('/proc/%d/stat' % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(')') + 2:].split()
        flt += int(fields[7])
        user += int(fields[11])
        sys_ += int(fields[12])
    return user / TICK, sys_ / TICK, flt


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open('/proc/%d/smaps_rollup' % p) as f:
                for line in f:
                    if line.startswith('Rss:'):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def fill(template, values, out_path):
    with open(os.path.join(CONF, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace('@@%s@@' % k, str(v))
    left = re.findall(r'@@[A-Z_]+@@', text)
    if left:
        raise RuntimeError('%s: unfilled %s' % (template, left))
    with open(out_path, 'w') as f:
        f.write(text)
    return out_path


class Proc:
    def __init__(self, name, argv, cpus, tmp, port=None, ready=None):
        self.name = name
        self.log_path = os.path.join(tmp, name + '.log')
        self.logf = open(self.log_path, 'w')
        self.p = subprocess.Popen(['taskset', '-c', cpus] + WRAP + argv, stdout=self.logf,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.port = port
        try:
            if ready is not None:
                wait_until(lambda: self.alive() and ready(self), 60, name + ' to be ready')
            elif port is not None:
                wait_until(lambda: self.alive() and port_open(port), 60, name + ' to listen')
        except RuntimeError:
            self.stop()
            raise RuntimeError('%s did not start: %s' % (name, self.tail()))

    def alive(self):
        return self.p.poll() is None

    def tail(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-800:]
        except OSError:
            return ''

    def pids(self):
        return tree(self.p.pid)

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        # Workers that outlived their master (nginx, nghttpx) go with the session.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix='weir-peers.')
        os.chmod(self.tmp, 0o755)  # h2o started as root serves files as nobody
        self.doc = os.path.join(self.tmp, 'doc')
        os.makedirs(self.doc)
        for d in ('nginx-upstream-tmp', 'nginx-proxy-tmp'):
            os.makedirs(os.path.join(self.tmp, d))
        with open(os.path.join(self.doc, 'small.bin'), 'wb') as f:
            f.write((b'weir-peers-small-body-' * 10)[:SMALL_LEN - 1] + b'\n')
        with open(os.path.join(self.doc, 'large.bin'), 'wb') as f:
            f.write(os.urandom(LARGE_LEN))
        self.key = os.path.join(self.tmp, 'key.pem')
        self.cert = os.path.join(self.tmp, 'cert.pem')
        self.pem = os.path.join(self.tmp, 'both.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj',
                        '/CN=localhost', '-keyout', self.key, '-out', self.cert],
                       check=True, capture_output=True)
        with open(self.pem, 'w') as f:
            f.write(open(self.cert).read() + open(self.key).read())
        self.raw = open(os.path.join(a.raw, 'raw.jsonl'), 'a')
        self.ups = {}

    def emit(self, rec):
        rec['run'] = self.a.run_id
        self.raw.write(json.dumps(rec, sort_keys=True) + '\n')
        self.raw.flush()

    # --- upstreams -------------------------------------------------------------------------

    def start_upstreams(self):
        p = free_port()
        cfg = fill('nginx-upstream.conf', {'TMP': self.tmp, 'PORT': p, 'DOCROOT': self.doc},
                   os.path.join(self.tmp, 'nginx-upstream.conf'))
        self.ups['h1'] = Proc('upstream-nginx', ['nginx', '-e', os.path.join(
            self.tmp, 'nginx-upstream.err'), '-p', self.tmp, '-c', cfg], '1', self.tmp, port=p)
        p = free_port()
        self.ups['h2c'] = Proc('upstream-nghttpd', ['nghttpd', '--no-tls', '-d', self.doc,
                                                     str(p)], '1', self.tmp, port=p)

    def stop_upstreams(self):
        for u in self.ups.values():
            u.stop()
        self.ups = {}

    # --- proxies ---------------------------------------------------------------------------

    def start_proxy(self, name, workers, front, up, ceiling=False):
        """Starts NAME (or the h2o ceiling) and returns a Proc with .port set."""
        cpus = '0' if workers == 1 else '0,1'
        tls = front == 'tls'
        h1 = front == 'h1'  # cleartext HTTP/1.1: every proxy's h2c port also takes HTTP/1.1
        t = self.tmp
        uport = self.ups[up].port if not ceiling else 0
        if ceiling:
            p = free_port()
            h2o_tls = ('  ssl:\n    certificate-file: %s\n    key-file: %s\n' %
                       (self.cert, self.key)) if tls else ''
            cfg = fill('h2o-ceiling.conf', {'WORKERS': workers, 'TMP': t, 'PORT': p,
                                            'H2O_TLS': h2o_tls, 'DOCROOT': self.doc},
                       os.path.join(t, 'h2o-ceiling.conf'))
            return Proc('ceiling-h2o', ['h2o', '-c', cfg], cpus, t, port=p)
        if name == 'weir':
            wtls = ('    tls:\n      cert: %s\n      key: %s\n' % (self.cert, self.key)
                    if tls else '')
            cfg = fill('weir.yaml', {'WEIR_TLS': wtls, 'UPROTO': 'h2c' if up == 'h2c'
                                     else 'http1', 'UPORT': uport, 'WORKERS': workers},
                       os.path.join(t, 'weir.yaml'))

            def ready(pr):
                txt = open(pr.log_path).read()
                if 'weir: ready' not in txt:
                    return False
                pr.port = int(re.search(r'^weir: listener \S+ \S+ \S+:(\d+)$', txt,
                                        re.M).group(1))
                pr.admin = int(re.search(r'^weir: admin \S+:(\d+)$', txt, re.M).group(1))
                return True
            return Proc('weir', [self.a.weir, '-c', cfg], cpus, t, ready=ready)
        p = free_port()
        if name == 'nghttpx':
            fe = '127.0.0.1,%d' % p + ('' if tls else ';no-tls')
            be = '127.0.0.1,%d;;proto=h2' % uport if up == 'h2c' else '127.0.0.1,%d' % uport
            argv = ['nghttpx', '--conf=/dev/null', '--frontend=' + fe, '--backend=' + be,
                    '-n', str(workers), '--backend-keep-alive-timeout=600s',
                    '--frontend-http2-read-timeout=600s', '--frontend-keep-alive-timeout=600s',
                    '--backend-connections-per-host=1024', '--errorlog-file=' +
                    os.path.join(t, 'nghttpx.err'), '--no-ocsp', '--no-via',
                    '--add-x-forwarded-for', '--worker-frontend-connections=20000']
            if up == 'h2c':
                argv.append('--backend-http2-connections-per-worker=1')
            if tls:
                argv += [self.key, self.cert]
            return Proc('nghttpx', argv, cpus, t, port=p)
        if name == 'h2o':
            h2o_tls = ('  ssl:\n    certificate-file: %s\n    key-file: %s\n' %
                       (self.cert, self.key)) if tls else ''
            cfg = fill('h2o-proxy.conf', {'WORKERS': workers, 'TMP': t, 'PORT': p,
                                          'H2O_TLS': h2o_tls, 'UPORT': uport},
                       os.path.join(t, 'h2o-proxy.conf'))
            return Proc('h2o', ['h2o', '-c', cfg], cpus, t, port=p)
        if name == 'haproxy':
            bind = ('ssl crt %s alpn h2' % self.pem) if tls else ('' if h1 else 'proto h2')
            cfg = fill('haproxy.cfg', {'WORKERS': workers, 'PORT': p, 'UPORT': uport,
                                       'HAPROXY_BIND': bind,
                                       'HAPROXY_SERVER': 'proto h2' if up == 'h2c' else ''},
                       os.path.join(t, 'haproxy.cfg'))
            return Proc('haproxy', ['haproxy', '-db', '-f', cfg], cpus, t, port=p)
        if name == 'nginx':
            ntls = ('ssl_certificate %s; ssl_certificate_key %s;' % (self.cert, self.key)
                    if tls else '')
            cfg = fill('nginx-proxy.conf', {'WORKERS': workers, 'TMP': t, 'PORT': p,
                                            'UPORT': uport, 'NGINX_TLS': ntls,
                                            'NGINX_LISTEN': 'ssl http2' if tls else
                                            ('' if h1 else 'http2')},
                       os.path.join(t, 'nginx-proxy.conf'))
            return Proc('nginx', ['nginx', '-e', os.path.join(t, 'nginx-proxy.err'), '-p', t,
                                  '-c', cfg], cpus, t, port=p)
        raise ValueError(name)

    def url(self, front, port, path):
        return '%s://127.0.0.1:%d%s' % ('https' if front == 'tls' else 'http', port, path)

    # --- load ------------------------------------------------------------------------------

    def h2load(self, url, duration, log_file=None, h1=False):
        # A proxy that stalls must not hang the run: h2load gives up on a connection idle
        # for 10 s, and the whole run is killed 30 s after its duration. HTTP/1.1: one
        # request in flight per connection (-m 1), as browsers and most clients do.
        argv = ['timeout', '-s', 'KILL', str(duration + 30), 'taskset', '-c', '1', 'h2load',
                '-c', '64', '-m', '1' if h1 else '10', '-t', '1', '-N', '10s', '-D',
                str(duration)] + (['--h1'] if h1 else []) + [url]
        if log_file:
            argv[-1:-1] = ['--log-file', log_file]
        out = open(os.path.join(self.tmp, 'h2load.out'), 'w+')
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
        out.close()
        m = re.search(r'finished in ([\d.]+)(m?s), ([\d.]+) req/s', text)
        d = re.search(r'requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, '
                      r'(\d+) failed, (\d+) errored', text)
        if p.returncode != 0 or not m or not d:
            raise RuntimeError('h2load failed (%d): %s' % (p.returncode, text[-600:]))
        if int(d.group(4)) < 0.99 * max(1, int(d.group(3))) or int(d.group(3)) == 0:
            raise RuntimeError('h2load: too few 2xx responses: %s' % d.group(0))
        secs = float(m.group(1)) / (1000 if m.group(2) == 'ms' else 1)
        return {'rps': float(m.group(3)), 'secs': secs, 'done': int(d.group(3)),
                'ok': int(d.group(4)), 'failed': int(d.group(5)), 'errored': int(d.group(6)),
                'h2load_cpu_s': ru.ru_utime + ru.ru_stime}

    def percentiles(self, log_file):
        durs = []
        with open(log_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == '200':
                    durs.append(int(parts[2]))
        durs.sort()
        if not durs:
            return {}

        def q(x):
            return durs[min(len(durs) - 1, int(x * len(durs)))]
        return {'p50_us': q(0.50), 'p99_us': q(0.99), 'p999_us': q(0.999), 'n_log': len(durs)}

    def measure(self, px, proxy, workers, front, up, body, rep):
        path = '/small.bin' if body == 'small' else '/large.bin'
        url = self.url(front, px.port, path)
        h1 = front == 'h1'
        self.h2load(url, self.a.warmup, h1=h1)
        pids = px.pids()
        upids = self.ups[up].pids() if up in self.ups else []
        s0 = stat_split(pids)
        c0, u0, t0 = cpu_s(pids), cpu_s(upids), time.monotonic()
        lf = os.path.join(self.tmp, 'h2load.log')
        r = self.h2load(url, self.a.duration, lf, h1=h1)
        c1, u1, wall = cpu_s(pids), cpu_s(upids), time.monotonic() - t0
        s1 = stat_split(pids)
        r.update(self.percentiles(lf))
        os.unlink(lf)
        r.update({'kind': 'throughput', 'proxy': proxy, 'workers': workers, 'front': front,
                  'up': up, 'body': body, 'rep': rep, 'wall_s': wall,
                  'proxy_cpu_s': c1 - c0, 'up_cpu_s': u1 - u0,
                  'proxy_cpu_us_per_req': (c1 - c0) * 1e6 / max(1, r['done']),
                  'proxy_user_s': s1[0] - s0[0], 'proxy_sys_s': s1[1] - s0[1],
                  'proxy_minflt_per_req': (s1[2] - s0[2]) / max(1, r['done']),
                  'proxy_rss_kb': rss_kb(pids)})
        self.emit(r)
        log('%-8s w=%d %-3s up=%-3s %-5s rep %d: %8.0f req/s p99 %6.1f ms  cpu %5.1f us/req '
            '(proxy %3.0f%% h2load %3.0f%% up %3.0f%%)' % (
                proxy, workers, front, up, body, rep, r['rps'], r.get('p99_us', 0) / 1000,
                r['proxy_cpu_us_per_req'], 100 * (c1 - c0) / wall,
                100 * r['h2load_cpu_s'] / wall, 100 * (u1 - u0) / wall))

    def throughput(self):
        cells = []
        for workers in self.a.workers:
            for front in self.a.fronts:
                cells.append(('ceiling', workers, front, 'file'))
                for up in ('h1', 'h2c'):
                    for proxy in self.a.proxies:
                        if up in UPSTREAMS[proxy]:
                            cells.append((proxy, workers, front, up))
        for rep in range(1, self.a.reps + 1):
            for proxy, workers, front, up in cells:
                try:
                    px = self.start_proxy(proxy, workers, front, up,
                                          ceiling=proxy == 'ceiling')
                except RuntimeError as e:
                    log('SKIP %s: %s' % (proxy, e))
                    self.emit({'kind': 'error', 'proxy': proxy, 'workers': workers,
                               'front': front, 'up': up, 'error': str(e)[-400:]})
                    continue
                try:
                    for body in ('small', 'large'):
                        try:
                            self.measure(px, proxy, workers, front, up, body, rep)
                        except RuntimeError as e:
                            log('ERROR %s %s: %s' % (proxy, body, e))
                            self.emit({'kind': 'error', 'proxy': proxy, 'workers': workers,
                                       'front': front, 'up': up, 'body': body,
                                       'error': str(e)[-400:]})
                finally:
                    px.stop()

    # --- memory ----------------------------------------------------------------------------

    def holder(self, url, conns, streams=0, slow=None):
        argv = ['taskset', '-c', '1', 'node', os.path.join(HERE, 'holdconns.js'), '--url', url,
                '--conns', str(conns)]
        if streams:
            argv += ['--streams', str(streams), '--slow-path', slow, '--path', '/']
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, bufsize=1)

    def expect(self, h, word, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        line = h.stdout.readline()
        if not line.startswith(word) or time.monotonic() > deadline:
            h.kill()
            raise RuntimeError('holdconns: expected %s, got %r' % (word, line))
        return line.split()

    def settle_rss(self, pids, quiet_s):
        time.sleep(quiet_s)
        return rss_kb(pids)

    def admin_release(self, px):
        import urllib.request
        # urllib's default body type (a form) is what the admin refuses as cross-site.
        req = urllib.request.Request('http://127.0.0.1:%d/memory/release' % px.admin,
                                     method='POST', data=b'',
                                     headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def idle_conns(self):
        n = self.a.conns
        for front in ('h2c', 'tls'):
            for proxy in self.a.proxies:
                try:
                    px = self.start_proxy(proxy, 1, front, 'h1')
                except RuntimeError as e:
                    log('SKIP %s: %s' % (proxy, e))
                    continue
                try:
                    pids = px.pids()
                    url = self.url(front, px.port, '/small.bin')
                    # One warm connection first, so first-use costs (TLS context, upstream
                    # connection, caches) are in the baseline, not spread over the 2,000.
                    h = self.holder(url, 1)
                    self.expect(h, 'IDLE')
                    h.stdin.write('\n')
                    self.expect(h, 'CLOSED')
                    h.wait()
                    before = self.settle_rss(pids, self.a.decay)
                    h = self.holder(url, n)
                    idle = self.expect(h, 'IDLE')
                    opened = self.settle_rss(pids, self.a.idle_settle)
                    h.stdin.write('\n')
                    self.expect(h, 'CLOSED')
                    h.wait()
                    after = self.settle_rss(pids, self.a.decay)
                    rec = {'kind': 'idle', 'proxy': proxy, 'front': front, 'conns': int(idle[1]),
                           'rss_before_kb': before, 'rss_open_kb': opened,
                           'rss_after_kb': after,
                           'bytes_per_conn': (opened - before) * 1024 / int(idle[1]),
                           'decay_s': self.a.decay, 'idle_settle_s': self.a.idle_settle}
                    if proxy == 'weir':
                        self.admin_release(px)
                        rec['rss_after_release_kb'] = self.settle_rss(pids, 0.5)
                    self.emit(rec)
                    log('%-8s idle %-3s x%d: %.0f B/conn, RSS before %d kB open %d kB after %d kB'
                        % (proxy, front, n, rec['bytes_per_conn'], before, opened, after))
                except RuntimeError as e:
                    log('ERROR idle %s %s: %s' % (proxy, front, e))
                    self.emit({'kind': 'error', 'proxy': proxy, 'front': front,
                               'phase': 'idle', 'error': str(e)[-400:]})
                finally:
                    px.stop()

    def h2load_n(self, url, n):
        p = subprocess.run(['taskset', '-c', '1', 'h2load', '-c', '16', '-m', '10', '-t', '1',
                            '-n', str(n), url], capture_output=True, text=True)
        d = re.search(r'requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded',
                      p.stdout)
        if p.returncode != 0 or not d or int(d.group(4)) != n:
            raise RuntimeError('h2load -n %d: %s' % (n, p.stdout[-400:]))
        return n

    def profile(self):
        """callgrind instructions per request (weir and the single-process peers) and strace
        syscalls per request (weir), 1 worker, 100 B body."""
        global WRAP
        n = self.a.profile_requests
        runs = [('weir', 'h2c', 'h2c'), ('weir', 'h2c', 'h1'), ('weir', 'tls', 'h2c'),
                ('haproxy', 'h2c', 'h2c'), ('haproxy', 'h2c', 'h1'),
                ('haproxy', 'tls', 'h2c')]
        runs = [r for r in runs if r[0] in self.a.proxies]
        for proxy, front, up in runs:
            tag = '%s-%s-up%s' % (proxy, front, up)
            cg = os.path.join(self.tmp, 'callgrind.out.' + tag)
            WRAP = ['valgrind', '--tool=callgrind', '--instr-atstart=no',
                    '--callgrind-out-file=' + cg]
            try:
                px = self.start_proxy(proxy, 1, front, up)
            finally:
                WRAP = []
            try:
                url = self.url(front, px.port, self.a.profile_path)
                self.h2load_n(url, 200)  # first-use costs out of the profile
                subprocess.run(['callgrind_control', '-i', 'on', str(px.p.pid)], check=True,
                               capture_output=True)
                self.h2load_n(url, n)
                subprocess.run(['callgrind_control', '-i', 'off', str(px.p.pid)], check=True,
                               capture_output=True)
            finally:
                px.stop()
            outs = [f for f in os.listdir(self.tmp) if f.startswith('callgrind.out.' + tag)]
            total = 0
            for f in outs:
                with open(os.path.join(self.tmp, f)) as fh:
                    for line in fh:
                        if line.startswith('totals:') or line.startswith('summary:'):
                            total = max(total, int(line.split()[1]))
            ann = []
            for f in sorted(outs):
                for incl in ('no', 'yes'):
                    r = subprocess.run(['callgrind_annotate', '--inclusive=' + incl,
                                        '--threshold=99', os.path.join(self.tmp, f)],
                                       capture_output=True, text=True)
                    ann.append('### %s inclusive=%s\n%s' % (f, incl, r.stdout[:60000]))
            with open(os.path.join(self.a.raw, 'callgrind-%s.txt' % tag), 'w') as fh:
                fh.write('\n'.join(ann))
            # The raw profiles too: bench/allocshare.py reads their inlined-file records to
            # count mem/'s inline fast paths where proxy/ functions inlined them.
            for f in outs:
                shutil.copy(os.path.join(self.tmp, f), self.a.raw)
            rec = {'kind': 'callgrind', 'proxy': proxy, 'front': front, 'up': up,
                   'requests': n, 'ir_total': total, 'ir_per_req': total / n}
            self.emit(rec)
            log('%-8s callgrind %s up=%s: %.0f instructions/request' % (
                proxy, front, up, rec['ir_per_req']))
        for front, up in (('h2c', 'h2c'), ('h2c', 'h1'), ('tls', 'h2c')):
            if self.a.strace_requests == 0 or 'weir' not in self.a.proxies:
                break
            tag = 'weir-%s-up%s' % (front, up)
            px = self.start_proxy('weir', 1, front, up)
            try:
                url = self.url(front, px.port, '/small.bin')
                self.h2load_n(url, 1000)
                out = os.path.join(self.a.raw, 'strace-%s.txt' % tag)
                st = subprocess.Popen(['strace', '-c', '-f', '-o', out, '-p', str(px.p.pid)],
                                      stderr=subprocess.PIPE, text=True)
                st.stderr.readline()  # "strace: Process N attached": tracing has begun
                time.sleep(0.2)  # the other threads' attach lines follow at once
                self.h2load_n(url, self.a.strace_requests)
                st.send_signal(signal.SIGINT)
                st.wait(30)
            finally:
                px.stop()
            calls = 0
            with open(out) as fh:
                for line in fh:
                    if line.rstrip().endswith('total'):
                        calls = int(line.split()[3])
            rec = {'kind': 'strace', 'proxy': 'weir', 'front': front, 'up': up,
                   'requests': self.a.strace_requests, 'syscalls': calls,
                   'syscalls_per_req': calls / self.a.strace_requests}
            self.emit(rec)
            log('weir strace %s up=%s: %.2f syscalls/request' % (front, up,
                                                                 rec['syscalls_per_req']))

    def active_streams(self):
        conns, per = self.a.stream_conns, self.a.streams // self.a.stream_conns
        slow = '/slow?ms=%d&bytes=20000&head_ms=0' % (self.a.slow_ms)
        for up in ('h2c', 'h1'):
            p = subprocess.Popen(['taskset', '-c', '1', 'node',
                                  os.path.join(SRC, 'tests/e2e/upstream.js'), '--proto',
                                  'h2c' if up == 'h2c' else 'http1', '--port', '0'],
                                 stdout=subprocess.PIPE, text=True)
            port = int(p.stdout.readline().split()[1])
            self.ups['slow'] = type('U', (), {'port': port, 'pids': lambda s: [p.pid]})()
            saved = self.ups.get(up)
            self.ups[up] = self.ups['slow']
            try:
                for proxy in self.a.proxies:
                    if up not in UPSTREAMS[proxy]:
                        continue
                    try:
                        px = self.start_proxy(proxy, 1, 'h2c', up)
                    except RuntimeError as e:
                        log('SKIP %s: %s' % (proxy, e))
                        continue
                    try:
                        pids = px.pids()
                        h = self.holder(self.url('h2c', px.port, '/'), conns, per, slow)
                        self.expect(h, 'IDLE')
                        base = self.settle_rss(pids, 0.5)
                        h.stdin.write('\n')
                        ready = self.expect(h, 'READY')
                        active = rss_kb(pids)
                        h.stdin.write('\n')
                        self.expect(h, 'CLOSED')
                        h.wait()
                        nok = int(ready[1])
                        rec = {'kind': 'streams', 'proxy': proxy, 'up': up, 'conns': conns,
                               'streams': nok, 'streams_failed': int(ready[2]),
                               'rss_idle_kb': base, 'rss_active_kb': active,
                               'bytes_per_stream': (active - base) * 1024 / max(1, nok)}
                        self.emit(rec)
                        log('%-8s streams up=%-3s %d ok %d failed: %.0f B/stream' % (
                            proxy, up, nok, int(ready[2]), rec['bytes_per_stream']))
                    except RuntimeError as e:
                        log('ERROR streams %s: %s' % (proxy, e))
                        self.emit({'kind': 'error', 'proxy': proxy, 'phase': 'streams',
                                   'up': up, 'error': str(e)[-400:]})
                    finally:
                        px.stop()
            finally:
                p.kill()
                p.wait()
                del self.ups['slow']
                if saved is not None:
                    self.ups[up] = saved


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weir', required=True)
    ap.add_argument('--raw', required=True, help='folder for raw.jsonl')
    ap.add_argument('--run-id', dest='run_id', required=True)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--duration', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--workers', default='1,2')
    ap.add_argument('--fronts', default='h2c,tls,h1',
                    help='throughput frontends: h2c, tls, h1 (HTTP/1.1 cleartext, h2load --h1)')
    ap.add_argument('--proxies', default=','.join(PROXIES))
    ap.add_argument('--conns', type=int, default=2000)
    ap.add_argument('--streams', type=int, default=1000)
    ap.add_argument('--stream-conns', dest='stream_conns', type=int, default=20)
    ap.add_argument('--slow-ms', dest='slow_ms', type=int, default=30000)
    ap.add_argument('--decay', type=float, default=3.0)
    # Seconds between IDLE (every connection answered) and the RSS read, for every proxy
    # alike: weir drops an idle connection's HPACK tables at its 1 s tick.
    ap.add_argument('--idle-settle', type=float, default=0.5)
    ap.add_argument('--phases', default='throughput,idle,streams,profile')
    ap.add_argument('--profile-requests', dest='profile_requests', type=int, default=5000)
    # The profiled file: /small.bin (100 B, the default) or /large.bin (16 KiB).
    ap.add_argument('--profile-path', dest='profile_path', default='/small.bin',
                    choices=('/small.bin', '/large.bin'))
    ap.add_argument('--strace-requests', dest='strace_requests', type=int, default=20000,
                    help='0: no strace run in the profile phase')
    a = ap.parse_args()
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    a.workers = [int(x) for x in a.workers.split(',')]
    a.proxies = a.proxies.split(',')
    a.fronts = a.fronts.split(',')
    b = Bench(a)
    try:
        b.start_upstreams()
        phases = a.phases.split(',')
        if 'throughput' in phases:
            b.throughput()
        if 'idle' in phases:
            b.idle_conns()
        if 'streams' in phases:
            b.active_streams()
        if 'profile' in phases:
            b.profile()
    finally:
        b.stop_upstreams()
        shutil.rmtree(b.tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
