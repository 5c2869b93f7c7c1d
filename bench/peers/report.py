#!/usr/bin/python3
# bench/peers/report.py: turns one bench/run-peers run (bench/results/peers-raw/raw.jsonl and
# env.jsonl, selected by --run-id) into bench/results/peers.md and the gnuplot figures
# bench/results/peers-{rps,p99,cpu,mem}.svg. Medians over repetitions; ratios are to the best
# peer (the best of nghttpx, h2o, HAProxy and nginx in the same cell) and to the ceiling (h2o
# serving the file itself, same frontend, body and worker count).
import argparse
import json
import os
import statistics
import subprocess
import sys

PEERS = ['nghttpx', 'h2o', 'haproxy', 'nginx']
ORDER = ['weir'] + PEERS
FRONTS = ('h2c', 'tls', 'h1')  # h1: HTTP/1.1 on the cleartext port (h2load --h1 -m 1)


def fronts_seen(agg):
    """The frontends the run measured, in FRONTS order (older runs have no h1)."""
    seen = {k[1] for k in agg}
    return [f for f in FRONTS if f in seen]


UP_NAME = {'h1': 'HTTP/1.1 (nginx)', 'h2c': 'h2c (nghttpd)'}
BODY_NAME = {'small': '100 B', 'large': '16 KiB'}
# Targets (issue 8): weir / best peer.
T_CPU = {'h1': 0.6, 'h2c': 0.75}
T_RPS = 1.5
T_P99 = 0.7
T_IDLE = {'h2c': 1024, 'tls': 12 * 1024}
T_RSS_BACK = 0.05


def load(raw, run_id):
    recs = []
    with open(os.path.join(raw, 'raw.jsonl')) as f:
        for line in f:
            r = json.loads(line)
            if r.get('run') == run_id:
                recs.append(r)
    env = None
    with open(os.path.join(raw, 'env.jsonl')) as f:
        for line in f:
            r = json.loads(line)
            if r.get('run') == run_id:
                env = r
    return recs, env


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fr(x, nd=2):
    return '—' if x is None else ('%.*f×' % (nd, x))


def fnum(x, fmt='%.0f'):
    return '—' if x is None else fmt % x


def spread(xs):
    """' (min–max)' over the repetitions, when there are several."""
    if len(xs) < 2:
        return ''
    return ' (%.0fk–%.0fk)' % (min(xs) / 1000, max(xs) / 1000)


def aggregate(recs):
    cells = {}
    for r in recs:
        if r['kind'] != 'throughput':
            continue
        k = (r['workers'], r['front'], r['up'], r['body'], r['proxy'])
        cells.setdefault(k, []).append(r)
    out = {}
    for k, rs in cells.items():
        wall = [r['wall_s'] for r in rs]
        out[k] = {
            'n': len(rs),
            'rps': med([r['rps'] for r in rs]),
            'rps_all': [r['rps'] for r in rs],
            'p50': med([r.get('p50_us') for r in rs]),
            'p99': med([r.get('p99_us') for r in rs]),
            'p999': med([r.get('p999_us') for r in rs]),
            'cpu': med([r['proxy_cpu_us_per_req'] for r in rs]),
            'px_pct': med([100 * r['proxy_cpu_s'] / w for r, w in zip(rs, wall)]),
            'ld_pct': med([100 * r['h2load_cpu_s'] / w for r, w in zip(rs, wall)]),
            'up_pct': med([100 * r['up_cpu_s'] / w for r, w in zip(rs, wall)]),
            'sys_share': med([100 * r['proxy_sys_s'] / r['proxy_cpu_s'] for r in rs
                              if 'proxy_sys_s' in r and r['proxy_cpu_s'] > 0]),
            'flt': med([r.get('proxy_minflt_per_req') for r in rs]),
        }
    return out


def limit_of(c, workers):
    """Names the process (or CPU) that was the limit: one near 100% of its CPU."""
    if workers == 1:
        if c['px_pct'] >= 85:
            return 'proxy (CPU 0)'
        if c['ld_pct'] + c['up_pct'] >= 85:
            return 'CPU 1 (%s)' % ('h2load' if c['ld_pct'] >= c['up_pct'] else 'upstream')
        return 'none >85% (shared machine)'
    total = c['px_pct'] + c['ld_pct'] + c['up_pct']
    if total >= 170:
        big = max((c['px_pct'], 'proxy'), (c['ld_pct'], 'h2load'), (c['up_pct'], 'upstream'))
        return 'both CPUs (most: %s)' % big[1]
    return 'none >85% (shared machine)'


def best_peer(agg, key, metric, lower_better):
    vals = []
    for p in PEERS:
        c = agg.get(key + (p,))
        if c and c[metric] is not None:
            vals.append((c[metric], p))
    if not vals:
        return None, None
    v = min(vals) if lower_better else max(vals)
    return v


def throughput_table(agg, workers, lines):
    lines.append('| upstream | front | body | proxy | req/s (reps min–max) | vs best | vs ceil | p50 ms | '
                 'p99 ms | vs best | vs ceil | p99.9 ms | CPU µs/req | vs best | vs ceil | '
                 'CPU % proxy/h2load/upstream | limit |')
    lines.append('|' + '---|' * 17)
    for front in fronts_seen(agg):
        for body in ('small', 'large'):
            ceil = agg.get((workers, front, 'file', body, 'ceiling'))
            for up in ('h1', 'h2c'):
                key = (workers, front, up, body)
                brps, _ = best_peer(agg, key, 'rps', False)
                bp99, _ = best_peer(agg, key, 'p99', True)
                bcpu, _ = best_peer(agg, key, 'cpu', True)
                for p in ORDER:
                    c = agg.get(key + (p,))
                    if c is None:
                        if up == 'h2c' and p in ('h2o', 'nginx'):
                            lines.append('| %s | %s | %s | %s | n/a (no h2 upstream) |%s' % (
                                UP_NAME[up], front, BODY_NAME[body], p, ' |' * 12))
                        continue
                    lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s '
                                 '| %s | %s | %s | %s/%s/%s | %s |' % (
                                     UP_NAME[up], front, BODY_NAME[body],
                                     '**weir**' if p == 'weir' else p,
                                     fnum(c['rps']) + spread(c['rps_all']),
                                     fr(ratio(c['rps'], brps)),
                                     fr(ratio(c['rps'], ceil and ceil['rps'])),
                                     fnum(c['p50'] and c['p50'] / 1000, '%.2f'),
                                     fnum(c['p99'] and c['p99'] / 1000, '%.2f'),
                                     fr(ratio(c['p99'], bp99)),
                                     fr(ratio(c['p99'], ceil and ceil['p99'])),
                                     fnum(c['p999'] and c['p999'] / 1000, '%.2f'),
                                     fnum(c['cpu'], '%.1f'), fr(ratio(c['cpu'], bcpu)),
                                     fr(ratio(c['cpu'], ceil and ceil['cpu'])),
                                     fnum(c['px_pct']), fnum(c['ld_pct']), fnum(c['up_pct']),
                                     limit_of(c, workers)))
            if ceil:
                lines.append('| (ceiling: h2o serves the file) | %s | %s | h2o | %s | | | %s | '
                             '%s | | | %s | %s | | | %s/%s/— | %s |' % (
                                 front, BODY_NAME[body], fnum(ceil['rps']),
                                 fnum(ceil['p50'] and ceil['p50'] / 1000, '%.2f'),
                                 fnum(ceil['p99'] and ceil['p99'] / 1000, '%.2f'),
                                 fnum(ceil['p999'] and ceil['p999'] / 1000, '%.2f'),
                                 fnum(ceil['cpu'], '%.1f'), fnum(ceil['px_pct']),
                                 fnum(ceil['ld_pct']), limit_of(
                                     dict(ceil, up_pct=0), workers)))


def kernel_table(agg, workers, lines):
    lines.append('Kernel share of the proxy\'s CPU time (stime ÷ utime+stime) and minor page '
                 'faults per request, %d worker%s:' % (workers, '' if workers == 1 else 's'))
    lines.append('')
    lines.append('| upstream | front | body | ' + ' | '.join(ORDER) + ' |')
    lines.append('|---|---|---|' + '---|' * len(ORDER))
    for up in ('h1', 'h2c'):
        for front in fronts_seen(agg):
            for body in ('small', 'large'):
                row = []
                for p in ORDER:
                    c = agg.get((workers, front, up, body, p))
                    if not c or c['sys_share'] is None:
                        row.append('—')
                    else:
                        row.append('%.0f%% / %.2f' % (c['sys_share'], c['flt'] or 0))
                if any(x != '—' for x in row):
                    lines.append('| %s | %s | %s | %s |' % (UP_NAME[up], front, BODY_NAME[body],
                                                          ' | '.join(row)))
    lines.append('')


def profile_section(recs, lines):
    cg = [r for r in recs if r['kind'] == 'callgrind']
    st = [r for r in recs if r['kind'] == 'strace']
    if not cg and not st:
        return
    lines.append('## Profile figures (1 worker, 100 B body, h2load -c 16 -m 10)')
    lines.append('')
    lines.append('Instructions per request in the proxy\'s user space (callgrind, '
                 'instrumentation on only during the measured requests; the kernel is not '
                 'counted, see syscalls below). Per-function listings: '
                 '`bench/results/peers-raw/callgrind-*.txt`.')
    lines.append('')
    lines.append('| front | upstream | weir Ir/req | haproxy Ir/req | weir ÷ haproxy |')
    lines.append('|---|---|---|---|---|')
    for front, up in (('h2c', 'h2c'), ('h2c', 'h1'), ('tls', 'h2c')):
        w = [r for r in cg if r['proxy'] == 'weir' and r['front'] == front and r['up'] == up]
        h = [r for r in cg if r['proxy'] == 'haproxy' and r['front'] == front and r['up'] == up]
        wv = w[-1]['ir_per_req'] if w else None
        hv = h[-1]['ir_per_req'] if h else None
        lines.append('| %s | %s | %s | %s | %s |' % (front, UP_NAME[up], fnum(wv), fnum(hv),
                                                      fr(ratio(wv, hv))))
    lines.append('')
    if st:
        lines.append('weir syscalls per request (`strace -c -f` attached for the measured '
                     'requests; per-syscall tables in `bench/results/peers-raw/strace-*.txt`):')
        lines.append('')
        for r in st:
            lines.append('- %s front, %s upstream: %.2f syscalls/request (%d over %d requests)'
                         % (r['front'], UP_NAME[r['up']], r['syscalls_per_req'], r['syscalls'],
                            r['requests']))
        lines.append('')


def targets(agg, idle, lines):
    met = missed = 0
    lines.append('| workers | upstream | front | body | CPU/req weir÷best (target) | '
                 'req/s weir÷best (≥1.5× if proxy-bound) | p99 weir÷best (≤0.70×) |')
    lines.append('|---|---|---|---|---|---|---|')
    for workers in (1, 2):
        for up in ('h1', 'h2c'):
            for front in fronts_seen(agg):
                for body in ('small', 'large'):
                    key = (workers, front, up, body)
                    w = agg.get(key + ('weir',))
                    if not w:
                        continue
                    bcpu, pcpu = best_peer(agg, key, 'cpu', True)
                    brps, prps = best_peer(agg, key, 'rps', False)
                    bp99, pp99 = best_peer(agg, key, 'p99', True)
                    cells = []
                    rc = ratio(w['cpu'], bcpu)
                    if rc is not None:
                        ok = rc <= T_CPU[up]
                        met, missed = met + ok, missed + (not ok)
                        cells.append('%.2f× vs %s (≤%.2f×) %s' % (
                            rc, pcpu, T_CPU[up], 'met' if ok else
                            'MISSED by %.0f%%' % (100 * (rc / T_CPU[up] - 1))))
                    else:
                        cells.append('—')
                    rr = ratio(w['rps'], brps)
                    bound = limit_of(w, workers).startswith(('proxy', 'both CPUs (most: proxy'))
                    if rr is not None and bound:
                        ok = rr >= T_RPS
                        met, missed = met + ok, missed + (not ok)
                        cells.append('%.2f× vs %s %s' % (rr, prps, 'met' if ok else
                                                         'MISSED by %.0f%%' % (
                                                             100 * (1 - rr / T_RPS))))
                    elif rr is not None:
                        cells.append('%.2f× vs %s (weir not the limit: not scored)' % (rr, prps))
                    else:
                        cells.append('—')
                    rp = ratio(w['p99'], bp99)
                    if rp is not None:
                        ok = rp <= T_P99
                        met, missed = met + ok, missed + (not ok)
                        cells.append('%.2f× vs %s %s' % (rp, pp99, 'met' if ok else
                                                         'MISSED by %.0f%%' % (
                                                             100 * (rp / T_P99 - 1))))
                    else:
                        cells.append('—')
                    lines.append('| %d | %s | %s | %s | %s |' % (
                        workers, UP_NAME[up], front, BODY_NAME[body], ' | '.join(cells)))
    for r in idle:
        if r['proxy'] != 'weir':
            continue
        t = T_IDLE[r['front']]
        b = r['bytes_per_conn']
        ok = b <= t
        met, missed = met + ok, missed + (not ok)
        lines.append('')
        lines.append('- idle %s connection: %.0f B (target ≤ %d B) — %s' % (
            r['front'], b, t, 'met' if ok else 'MISSED by %.0f B (%.1f×)' % (b - t, b / t)))
        back = (r['rss_after_kb'] - r['rss_before_kb']) / max(1, r['rss_before_kb'])
        ok = back <= T_RSS_BACK
        met, missed = met + ok, missed + (not ok)
        lines.append('- RSS %.0f s after the %s connections closed: %+.1f%% vs before '
                     '(target within 5%%) — %s' % (r['decay_s'], r['front'], 100 * back,
                                                   'met' if ok else 'MISSED by %.1f points' % (
                                                       100 * (back - T_RSS_BACK))))
    return met, missed


def write_plots(agg, idle, streams, out, raw):
    cells1 = [(f, u, b) for u in ('h1', 'h2c') for f in fronts_seen(agg)
              for b in ('small', 'large')]
    cols_all = ORDER + ['ceiling']
    made = []
    for metric, name, ylabel, scale in (('rps', 'rps', 'requests/s (median)', 1),
                                        ('p99', 'p99', 'p99 latency, ms', 1e-3),
                                        ('cpu', 'cpu', 'proxy CPU µs per request', 1)):
        for workers in (1, 2):
            if not any(k[0] == workers for k in agg):
                continue
            dat = os.path.join(raw, 'plot-%s-w%d.dat' % (name, workers))
            # Columns with no value at all would shift gnuplot's clusters: leave them out.
            cols = [p for p in cols_all if any(
                k[0] == workers and k[4] == p for k in agg)]
            values = 0
            with open(dat, 'w') as f:
                f.write('cell ' + ' '.join(cols) + '\n')
                for fr_, u, b in cells1:
                    row = ['%s/%s/%s' % (u, fr_, '100B' if b == 'small' else '16K')]
                    for p in cols:
                        c = agg.get((workers, fr_, 'file' if p == 'ceiling' else u, b, p))
                        v = c[metric] if c and c[metric] is not None else None
                        row.append('-' if v is None else '%.3f' % (v * scale))
                        values += v is not None
                    f.write(' '.join(row) + '\n')
            if values == 0:
                continue  # gnuplot refuses a plot without a point ("x range is invalid")
            made.append((dat, 'peers-%s-w%d.svg' % (name, workers),
                         '%s, %d worker%s (groups: upstream/frontend/body)' % (
                             ylabel, workers, '' if workers == 1 else 's'),
                         len(cols)))
    dat = os.path.join(raw, 'plot-mem.dat')
    with open(dat, 'w') as f:
        mcols = [p for p in ORDER if any(r['proxy'] == p for r in idle + streams)]
        f.write('what ' + ' '.join(mcols) + '\n')
        for what in ('idle-h2c', 'idle-tls', 'stream-h2c-up', 'stream-h1-up'):
            row = [what]
            for p in mcols:
                v = None
                for r in idle:
                    if r['proxy'] == p and 'idle-' + r['front'] == what:
                        v = r['bytes_per_conn']
                for r in streams:
                    if r['proxy'] == p and 'stream-%s-up' % r['up'] == what:
                        v = r['bytes_per_stream']
                row.append('-' if v is None else '%.0f' % v)
            f.write(' '.join(row) + '\n')
    if mcols:  # a run without the idle and streams phases has nothing to plot here
        made.append((dat, 'peers-mem.svg',
                     'bytes of proxy RSS per idle connection / active stream', len(mcols)))
    for dat, svg, title, n in made:
        gp = ('set terminal svg size 1000,480 dynamic font "sans,11"\n'
              'set output "%s"\n'
              'set title "%s"\n'
              'set datafile missing "-"\n'
              'set style data histograms\n'
              'set style histogram clustered gap 1\n'
              'set style fill solid 0.8 border -1\n'
              'set key top right\n'
              'set xtics nomirror\n'
              'set yrange [0:*]\n'
              'set grid ytics\n'
              'plot for [i=2:%d] "%s" using i:xtic(1) title columnheader(i)\n' % (
                  os.path.join(out, svg), title, n + 1, dat))
        gpf = dat[:-4] + '.gp'
        with open(gpf, 'w') as f:
            f.write(gp)
        subprocess.run(['gnuplot', gpf], check=True)
    return [m[1] for m in made]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--raw', required=True)
    ap.add_argument('--run-id', required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    recs, env = load(a.raw, a.run_id)
    agg = aggregate(recs)
    idle = [r for r in recs if r['kind'] == 'idle']
    streams = [r for r in recs if r['kind'] == 'streams']
    errors = [r for r in recs if r['kind'] == 'error']
    L = []
    L.append('# weir against nghttpx, h2o, HAProxy and nginx (bench/run-peers)')
    L.append('')
    L.append('Generated by `bench/peers/report.py` from run `%s` '
             '(raw lines: `bench/results/peers-raw/raw.jsonl`, `env.jsonl`). How it is run and '
             'what the profile shows: `bench/peers/README.md`.' % a.run_id)
    L.append('')
    if env:
        L.append('## Machine and run')
        L.append('')
        L.append('- date %s; %d CPUs (%s), %.1f GiB; kernel %s; git %s' % (
            env['date'], env['nproc'], env['cpu_model'], env['mem_gib'], env['kernel'],
            env['git']))
        L.append('- command: `%s` — %d repetition(s) of `h2load -c 64 -m 10 -t 1 -D %d` per '
                 'cell after a %d s warm-up run, medians reported' % (
                     env['command'], env['reps'], env['duration_s'], env['warmup_s']))
        L.append('- load average at start: %s (the machine was shared with other builds and '
                 'tests: treat single cells as ±20%%, see the per-rep spread in raw.jsonl)'
                 % ' '.join(env['loadavg']))
        L.append('- versions: ' + '; '.join('%s: %s' % (k, v) for k, v in
                                            sorted(env['versions'].items())))
        L.append('- pinning: the proxy on CPU 0 (`taskset -c 0`); h2load (one thread), the '
                 'upstream (nginx 1 worker for HTTP/1.1, nghttpd for h2c) and the node client '
                 'on CPU 1. With 2 workers the proxy gets CPUs 0-1 and **shares CPU 1** with '
                 'h2load and the upstream, so the 2-worker table measures contention as much '
                 'as scaling.')
        L.append('- proxy CPU µs/request = (utime+stime of every process of the proxy, from '
                 '/proc/PID/stat, after − before the measured h2load run) ÷ requests done. '
                 'CPU % columns: proxy / h2load / upstream over the run\'s wall time. The '
                 '"limit" is the process or CPU that was ≥85% busy.')
        L.append('- latency percentiles are computed from h2load `--log-file` per-request '
                 'durations (status 200 only).')
        L.append('')
    met_missed = None
    for workers in (1, 2):
        if not any(k[0] == workers for k in agg):
            continue
        L.append('## Throughput, latency and CPU: %d worker%s' % (workers,
                                                                  '' if workers == 1 else 's'))
        L.append('')
        throughput_table(agg, workers, L)
        L.append('')
        kernel_table(agg, workers, L)
    if idle or streams:
        L.append('## Memory')
        L.append('')
    if idle:
        L.append('Idle connections: %d sessions opened by `bench/peers/holdconns.js` (node '
                 'http2, CPU 1), each after one GET of the 100 B file through the proxy '
                 '(HTTP/1.1 upstream, 1 worker). RSS = sum of `Rss:` in /proc/PID/smaps_rollup '
                 'over the proxy\'s processes; "before" is after one warm connection came and '
                 'went; "after close" is %.0f s after the last session closed (no release call; '
                 'weir\'s `POST /memory/release` figure is listed separately).' % (
                     idle[0]['conns'], idle[0]['decay_s']))
        L.append('')
        L.append('| front | proxy | conns | RSS before kB | RSS open kB | B/conn | vs best peer '
                 '| RSS after close kB | after÷before | weir after /memory/release kB |')
        L.append('|---|---|---|---|---|---|---|---|---|---|')
        for front in ('h2c', 'tls'):
            rows = [r for r in idle if r['front'] == front]
            bp = [r['bytes_per_conn'] for r in rows if r['proxy'] in PEERS]
            best = min(bp) if bp else None
            for p in ORDER:
                for r in rows:
                    if r['proxy'] != p:
                        continue
                    L.append('| %s | %s | %d | %d | %d | %.0f | %s | %d | %.3f | %s |' % (
                        front, '**weir**' if p == 'weir' else p, r['conns'], r['rss_before_kb'],
                        r['rss_open_kb'], r['bytes_per_conn'],
                        fr(ratio(r['bytes_per_conn'], best)), r['rss_after_kb'],
                        r['rss_after_kb'] / max(1, r['rss_before_kb']),
                        r.get('rss_after_release_kb', '')))
        L.append('')
    if streams:
        L.append('Active streams: %d h2c sessions × %d slow streams each '
                 '(`tests/e2e/upstream.js /slow`: headers at once, 20,000 B over 30 s) through '
                 'the proxy; RSS growth from the idle sessions to all streams having their '
                 'response headers.' % (streams[0]['conns'],
                                        streams[0]['streams'] // max(1, streams[0]['conns'])))
        L.append('')
        L.append('| upstream | proxy | streams ok | failed | RSS idle kB | RSS active kB | '
                 'B/stream | vs best peer |')
        L.append('|---|---|---|---|---|---|---|---|')
        for up in ('h2c', 'h1'):
            rows = [r for r in streams if r['up'] == up]
            bp = [r['bytes_per_stream'] for r in rows if r['proxy'] in PEERS]
            best = min(bp) if bp else None
            for p in ORDER:
                for r in rows:
                    if r['proxy'] == p:
                        L.append('| %s | %s | %d | %d | %d | %d | %.0f | %s |' % (
                            UP_NAME[up].split()[0], '**weir**' if p == 'weir' else p,
                            r['streams'], r['streams_failed'], r['rss_idle_kb'],
                            r['rss_active_kb'], r['bytes_per_stream'],
                            fr(ratio(r['bytes_per_stream'], best))))
        L.append('')
    profile_section(recs, L)
    L.append('## Targets (weir ÷ best peer, same run)')
    L.append('')
    met, missed = targets(agg, idle, L)
    L.append('')
    L.append('**%d met, %d missed.**' % (met, missed))
    L.append('')
    if errors:
        L.append('## Errors during the run')
        L.append('')
        for e in errors:
            L.append('- %s %s %s %s: `%s`' % (e.get('proxy'), e.get('front', ''), e.get('up', ''),
                                              e.get('body', e.get('phase', '')),
                                              e['error'].replace('\n', ' ')[-200:]))
        L.append('')
    svgs = write_plots(agg, idle, streams, a.out, a.raw)
    L.append('## Figures')
    L.append('')
    for s in svgs:
        L.append('![%s](%s)' % (s, s))
    L.append('')
    L.append('Load average at the end of the report: %s.' % ' '.join(
        open('/proc/loadavg').read().split()[:3]))
    with open(os.path.join(a.out, 'peers.md'), 'w') as f:
        f.write('\n'.join(L) + '\n')
    # The allocator benchmark's summary goes into the same file (bench/allocsummary.py).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import allocsummary
    allocsummary.embed(a.out)


if __name__ == '__main__':
    main()
