#!/usr/bin/python3
# bench/peers/env.py: prints one JSON line describing the machine and the peers' versions for a
# bench/run-peers run (nproc, CPU model, kernel, date, load average, versions, command).
import argparse
import json
import os
import platform
import re
import subprocess
import time


def first_line(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 'unavailable'
    text = (p.stdout + p.stderr).strip()
    return text.splitlines()[0] if text else 'unavailable'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weir', required=True)
    ap.add_argument('--run-id', required=True)
    ap.add_argument('--reps', type=int, required=True)
    ap.add_argument('--duration', type=int, required=True)
    ap.add_argument('--warmup', type=int, required=True)
    ap.add_argument('--command', required=True)
    a = ap.parse_args()
    model = 'unknown'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as f:
        mem_kb = int(re.search(r'MemTotal:\s+(\d+)', f.read()).group(1))
    rev = subprocess.run(['git', '-C', os.path.dirname(os.path.abspath(a.weir)) + '/..',
                          'rev-parse', '--short', 'HEAD'], capture_output=True, text=True)
    rec = {
        'kind': 'env', 'run': a.run_id, 'date': time.strftime('%Y-%m-%d %H:%M:%S UTC',
                                                              time.gmtime()),
        'nproc': os.cpu_count(), 'cpu_model': model, 'mem_gib': round(mem_kb / 2**20, 1),
        'kernel': platform.release(), 'loadavg': open('/proc/loadavg').read().split()[:3],
        'reps': a.reps, 'duration_s': a.duration, 'warmup_s': a.warmup, 'command': a.command,
        'git': rev.stdout.strip(),
        'versions': {
            'weir': first_line([a.weir, '--version']),
            'nghttpx': first_line(['nghttpx', '--version']),
            'h2o': first_line(['h2o', '--version']),
            'haproxy': first_line(['haproxy', '-v']),
            'nginx': first_line(['nginx', '-v']),
            'h2load': first_line(['h2load', '--version']),
            'nghttpd': first_line(['nghttpd', '--version']),
            'node': first_line(['node', '--version']),
            'openssl': first_line(['openssl', 'version']),
        },
    }
    print(json.dumps(rec, sort_keys=True))


if __name__ == '__main__':
    main()
