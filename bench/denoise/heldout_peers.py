"""Classical side of `npm run bench:denoise-heldout`: peers on the same 8-bit clipped noisy arrays as the service.

Usage: /usr/bin/python3 bench/denoise/heldout_peers.py INDEX.json > peers.json
INDEX.json (written by bench/denoise/heldout-run.ts) lists cases: {family, level, levelId} and images: {name, split,
width, height, clean (raw u8), noisy: {levelId: raw little-endian float32}}. Splits: 'selection' (tuning only),
'report' (held-out figures), 'set12' (final figures). Every parameter that is tuned is chosen on the 'selection'
images alone (best mean PSNR on a fixed grid), then applied unchanged to the other splits.

PSNR = 10 log10(1 / mean((clip(xhat) - x)^2)), x = u8/255, no border crop (src/imaging/metrics.ts).
Methods (level given unless the name says blind):
  gaussian sigma:
    nlm          skimage denoise_nl_means(fast_mode, patch 5, distance 6, sigma=sigma, h = a sigma), a tuned
    nlm-blind    the same with sigma from skimage estimate_sigma (h = the tuned a times it)
    opencv-nlm   cv2.fastNlMeansDenoising on the u8 image (template 7, search 21), h = b sigma*255, b tuned
    tv           skimage denoise_tv_chambolle(weight = w sigma), w tuned
    wavelet      skimage denoise_wavelet(BayesShrink, soft, db1, sigma given) with cycle_spin(max_shifts=3)
  poisson zeta:   nlm-anscombe (Anscombe, NLM sigma 1 with h = a, exact unbiased inverse), a tuned
  gamma k:        nlm-log (NLM on log y, sigma sqrt(psi'(k)), h = a sigma, bias-corrected exp), a tuned
Times: wall (perf_counter) and CPU (process_time) around each call, single-threaded (OMP_NUM_THREADS=1 and
cv2.setNumThreads(1)).
"""
import json
import sys
import time

import cv2
import numpy as np
import skimage
from scipy.special import polygamma, psi
from skimage.restoration import (cycle_spin, denoise_nl_means, denoise_tv_chambolle, denoise_wavelet,
                                 estimate_sigma)

cv2.setNumThreads(1)

NLM_FACTORS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2]
OPENCV_FACTORS = [0.6, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0]
TV_FACTORS = [0.3, 0.5, 0.7, 1.0, 1.4, 2.0]


def psnr(x, xhat):
    mse = np.mean((np.clip(xhat, 0.0, 1.0) - x) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def nlm(y, sigma, a):
    return denoise_nl_means(y, patch_size=5, patch_distance=6, h=a * sigma, fast_mode=True, sigma=sigma)


def inverse_anscombe(a):
    a = np.maximum(a, 1e-6)
    s = np.sqrt(1.5)
    return np.maximum(0.25 * a**2 + 0.25 * s / a - 1.375 / a**2 + 0.625 * s / a**3 - 0.125, 0.0)


def methods_for(family, level):
    """name -> (grid or None, f(y, parameter) -> xhat)."""
    if family == 'gaussian':
        s = level

        def nlm_blind(y, a):
            est = float(estimate_sigma(y))
            return nlm(y, est, a)

        def opencv(y, b):
            u8 = np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)
            return cv2.fastNlMeansDenoising(u8, None, h=float(b * s * 255.0), templateWindowSize=7,
                                            searchWindowSize=21).astype(np.float64) / 255.0

        return {
            'nlm': (NLM_FACTORS, lambda y, a: nlm(y, s, a)),
            'nlm-blind': ('nlm', nlm_blind),
            'opencv-nlm': (OPENCV_FACTORS, opencv),
            'tv': (TV_FACTORS, lambda y, w: denoise_tv_chambolle(y, weight=w * s, eps=1e-6, max_num_iter=200)),
            'wavelet': (None, lambda y, _: cycle_spin(
                y, func=denoise_wavelet, max_shifts=3, num_workers=1,
                func_kw=dict(method='BayesShrink', mode='soft', wavelet='db1', sigma=s, rescale_sigma=True))),
        }
    if family == 'poisson':
        zeta = level

        def nlm_anscombe(y, a):
            t = 2.0 * np.sqrt(np.maximum(y, 0.0) / zeta + 0.375)
            return zeta * inverse_anscombe(nlm(t, 1.0, a))

        return {'nlm-anscombe': (NLM_FACTORS, nlm_anscombe)}
    k = level
    log_mean = float(psi(k) - np.log(k))
    log_std = float(np.sqrt(polygamma(1, k)))

    def nlm_log(y, a):
        l = np.log(np.maximum(y, 0.5 / 255.0))
        return np.exp(nlm(l, log_std, a) - log_mean)

    return {'nlm-log': (NLM_FACTORS, nlm_log)}


def run_one(method, y, x, parameter):
    t, c = time.perf_counter(), time.process_time()
    out = method(y, parameter)
    return psnr(x, out), time.perf_counter() - t, time.process_time() - c


def main():
    with open(sys.argv[1]) as f:
        index = json.load(f)
    images = []
    for image in index['images']:
        w, h = image['width'], image['height']
        x = np.fromfile(image['clean'], dtype=np.uint8).reshape(h, w).astype(np.float64) / 255.0
        noisy = {lid: np.fromfile(p, dtype='<f4').reshape(h, w).astype(np.float64) for lid, p in image['noisy'].items()}
        images.append({**image, 'x': x, 'y': noisy})
    out = {'skimage': skimage.__version__, 'opencv': cv2.__version__, 'numpy': np.__version__, 'cases': {}}
    for case in index['cases']:
        lid = case['levelId']
        chosen = {}
        results = {}
        methods = methods_for(case['family'], case['level'])
        nlm(images[0]['y'][lid][:32, :32], 0.1, 0.6)  # warm-up
        for name, (grid, method) in methods.items():
            if isinstance(grid, str):
                parameter = chosen[grid]
            elif grid is None:
                parameter = None
            else:
                sel = [im for im in images if im['split'] == 'selection' and lid in im['y']]
                scores = [np.mean([run_one(method, im['y'][lid], im['x'], g)[0] for im in sel]) for g in grid]
                parameter = grid[int(np.argmax(scores))]
                print(f'{lid} {name}: tuned {parameter} on {len(sel)} selection images '
                      f'({", ".join(f"{g}: {s:.2f}" for g, s in zip(grid, scores))})', file=sys.stderr, flush=True)
            chosen[name] = parameter
            cells = []
            for im in images:
                if lid not in im['y']:
                    continue
                p, sec, cpu = run_one(method, im['y'][lid], im['x'], parameter)
                cells.append({'name': im['name'], 'split': im['split'], 'psnr': p, 'seconds': sec, 'cpuSeconds': cpu,
                              'width': im['width'], 'height': im['height']})
            results[name] = cells
        out['cases'][lid] = {'parameters': chosen, 'methods': results}
        print(f'{lid} done', file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
