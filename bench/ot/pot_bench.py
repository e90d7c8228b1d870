"""POT side of `npm run bench:ot`: time one POT solver on a problem written by bench/ot/run.ts.

Usage: /usr/bin/python3 bench/ot/pot_bench.py PROBLEM.bin N METHOD PARAMS_JSON
PROBLEM.bin holds x (N x 2) then y (N x 2) as little-endian float64; weights are uniform; the cost is
ot.dist(x, y) (sqeuclidean), built outside the timed region. Prints one JSON line.
METHOD: emd | sinkhorn | sinkhorn_log. PARAMS: {"regRelative": 0.01, "tol": 1e-9, "maxIter": ...}.
"""
import json
import resource
import sys
import time

import numpy as np
import ot

path, n, method, params = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
data = np.fromfile(path, dtype='<f8')
x = data[: 2 * n].reshape(n, 2)
y = data[2 * n: 4 * n].reshape(n, 2)
M = ot.dist(x, y)
a = np.ones(n) / n
b = np.ones(n) / n

# Warm up (imports, first-call overheads) on a small problem, as the TypeScript side warms its JIT.
ot.emd(a[:50] * n / 50, b[:50] * n / 50, M[:50, :50])



def solve():
    out = {}
    if method == 'emd':
        t = time.perf_counter()
        G, log = ot.emd(a, b, M, numItermax=int(params.get('maxIter', 100000)), log=True)
        out['seconds'] = time.perf_counter() - t
        out['cost'] = float(log['cost'])
        out['status'] = log['warning'] or 'optimal'
    elif method in ('sinkhorn', 'sinkhorn_log'):
        reg = params['regRelative'] * M.max()
        t = time.perf_counter()
        G, log = ot.sinkhorn(a, b, M, reg, method=method, numItermax=int(params.get('maxIter', 100000)),
                             stopThr=params.get('tol', 1e-9), log=True)
        out['seconds'] = time.perf_counter() - t
        out['cost'] = float(np.sum(G * M))
        out['iterations'] = int(log.get('niter', len(log['err']) * 10))
    else:
        raise SystemExit(f'unknown method {method}')
    return out


# Best of `repetitions` runs, as the TypeScript side does.
result = min((solve() for _ in range(int(params.get('repetitions', 1)))), key=lambda r: r['seconds'])
result['pot_version'] = ot.__version__
result['maxRssMb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
