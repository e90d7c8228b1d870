"""POT side of `npm run bench:ot-scale`: POT's dense `ot.sinkhorn` on a problem written by bench/ot/scale.ts.

Usage: /usr/bin/python3 bench/ot/pot_scale.py PROBLEM.bin N D TOL
PROBLEM.bin holds x (N x D) then y (N x D) as little-endian float64; uniform weights; the cost is ot.dist(x, y)
(sqeuclidean) built outside the timed region, reg = 1e-2 * M.max() (also outside). Prints one JSON line:
wall and CPU seconds of ot.sinkhorn, iterations, <M, G>, the L1 marginal error of G (our stopping measure;
POT stops on the L2 norm of the column error), the RSS after reading the problem (before the warm-up and the
cost matrix) and the peak RSS of this process: bench/ot/scale.ts measures its own side the same way.
"""
import json
import resource
import sys
import time

import numpy as np
import ot

path, n, d, tol = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = np.fromfile(path, dtype='<f8')
x = data[: n * d].reshape(n, d)
y = data[n * d: 2 * n * d].reshape(n, d)
a = np.ones(n) / n
b = np.ones(n) / n


def rss_mb():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


base_rss = rss_mb()
# Warm up (imports, first-call overheads) on a small problem.
ot.sinkhorn(a[:50] * n / 50, b[:50] * n / 50, ot.dist(x[:50], y[:50]), 1.0)
M = ot.dist(x, y)
reg = 1e-2 * M.max()
t, c = time.perf_counter(), time.process_time()
G, log = ot.sinkhorn(a, b, M, reg, numItermax=100000, stopThr=tol, log=True)
seconds, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({
    'seconds': seconds,
    'cpuSeconds': cpu,
    'iterations': int(log['niter']) + 1,
    'cost': float(np.sum(G * M)),
    'marginalError': float(np.abs(G.sum(1) - a).sum() + np.abs(G.sum(0) - b).sum()),
    'maxRssMb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    'baseRssMb': base_rss,
    'pot': ot.__version__,
}))
