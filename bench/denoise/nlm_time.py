"""NLM side of `npm run bench:denoise-time`: CPU seconds of scikit-image NLM on one noisy image, repeated.

Usage: /usr/bin/python3 bench/denoise/nlm_time.py NOISY.f32 WIDTH HEIGHT SIGMA H_FACTOR COUNT
NOISY.f32: raw little-endian float32, row-major (the 8-bit clipped noisy image of bench/denoise/time.ts).
The method of bench/denoise/heldout_peers.py's 'nlm': denoise_nl_means(fast_mode, patch 5, distance 6,
sigma=SIGMA, h = H_FACTOR * SIGMA), on float64 as there. One warm-up call on a 32x32 crop, then COUNT calls, each
timed with process_time (CPU) and perf_counter (wall); run with OMP_NUM_THREADS=1. Prints JSON.
"""
import json
import sys
import time

import numpy as np
import skimage
from skimage.restoration import denoise_nl_means


def main():
    path, width, height, sigma, factor, count = sys.argv[1:7]
    width, height, sigma, factor, count = int(width), int(height), float(sigma), float(factor), int(count)
    y = np.fromfile(path, dtype='<f4').reshape(height, width).astype(np.float64)

    def nlm(image):
        return denoise_nl_means(image, patch_size=5, patch_distance=6, h=factor * sigma, fast_mode=True, sigma=sigma)

    nlm(y[:32, :32])
    cpu, wall = [], []
    for _ in range(count):
        t, c = time.perf_counter(), time.process_time()
        nlm(y)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(json.dumps({'skimage': skimage.__version__, 'cpuSeconds': cpu, 'seconds': wall}))


if __name__ == '__main__':
    main()
