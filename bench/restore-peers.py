"""Classical side of `npm run bench:restore`: scikit-image 0.19 baselines on the measurements bench/restore.ts wrote.

Usage: /usr/bin/python3 bench/restore-peers.py bench/out/restore/index.json
index.json lists problems: {id, kind: 'mask' | 'sr', count, height, width, y (file), mask (file, mask only), factor
(sr only)}. Files are raw little-endian float32, row-major, `count` grey images on [0, 1]:
  mask  y = m . x at the image size (0 where missing), mask m with 1 = observed, 0 = missing
  sr    y = average pooling of x by `factor` (size height/factor x width/factor)
Methods (what the issue names):
  inpaint_biharmonic(y, missing)                          inpainting  (skimage.restoration, 0.19: channel_axis=None)
  resize(y, (h, w), order=3, mode='symmetric', anti_aliasing=False)   bicubic up-sampling (skimage.transform)
Outputs are clipped to [0, 1] and written next to the inputs as <id>.<method>.f32; each image is timed alone
(time.perf_counter). Prints one JSON object: {skimage, numpy, results: {<id>: {<method>: {file, seconds}}}}.
Metrics are computed by bench/restore.ts for every method alike.
"""
import json
import os
import sys
import time

import numpy as np
import skimage
from skimage.restoration import inpaint_biharmonic
from skimage.transform import resize


def read(path, count, h, w):
    return np.fromfile(path, dtype='<f4').astype(np.float64).reshape(count, h, w)


def main():
    index_path = sys.argv[1]
    root = os.path.dirname(index_path)
    with open(index_path) as f:
        index = json.load(f)
    results = {}
    for p in index['problems']:
        count, h, w = p['count'], p['height'], p['width']
        out = np.zeros((count, h, w), dtype=np.float64)
        seconds = []
        if p['kind'] == 'mask':
            method = 'biharmonic'
            y = read(os.path.join(root, p['y']), count, h, w)
            m = read(os.path.join(root, p['mask']), count, h, w)
            for i in range(count):
                missing = m[i] < 0.5
                t = time.perf_counter()
                out[i] = inpaint_biharmonic(y[i], missing)
                seconds.append(time.perf_counter() - t)
        elif p['kind'] == 'sr':
            method = 'bicubic'
            s = p['factor']
            y = read(os.path.join(root, p['y']), count, h // s, w // s)
            for i in range(count):
                t = time.perf_counter()
                out[i] = resize(y[i], (h, w), order=3, mode='symmetric', anti_aliasing=False)
                seconds.append(time.perf_counter() - t)
        else:
            raise ValueError(f"unknown problem kind {p['kind']}")
        name = f"{p['id']}.{method}.f32"
        np.clip(out, 0.0, 1.0).astype('<f4').tofile(os.path.join(root, name))
        results[p['id']] = {method: {'file': name, 'seconds': seconds}}
    print(json.dumps({'skimage': skimage.__version__, 'numpy': np.__version__, 'results': results}))


if __name__ == '__main__':
    main()
