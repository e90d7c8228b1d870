"""Classical side of `npm run bench:denoise`: scikit-image denoisers on the noisy arrays written by bench/denoise/run.ts.

Usage: /usr/bin/python3 bench/denoise/peers.py INDEX.json [--families gaussian,poisson,gamma]
       /usr/bin/python3 bench/denoise/peers.py --nlm-once NOISY.f32 WIDTH HEIGHT SIGMA   (one timed Gaussian NLM call)
INDEX.json lists the Set12 images: width, height, the clean image as raw u8 and each noisy version as raw
little-endian float32 (row-major, grey). x = u8 / 255 in float64; each output is clipped to [0, 1] and scored by
PSNR = 10 log10(1 / mean((xhat - x)^2)) (no border crop), the formula src/imaging/metrics.ts uses.
Each denoiser call is timed alone (wall: time.perf_counter; CPU: time.process_time) after one warm-up call on a small crop. Prints one JSON object.

Methods (parameters fixed by the issue; the noise level is given to every method that takes one):
  gaussian sigma (on [0,1]):
    nlm      denoise_nl_means(y, patch_size=5, patch_distance=6, h=0.6 sigma, fast_mode=True, sigma=sigma)
    tv       denoise_tv_chambolle(y, weight=0.08, eps=1e-6, max_num_iter=1000)   (0.19 spells it max_num_iter)
    wavelet  cycle_spin(y, denoise_wavelet, max_shifts=3, num_workers=1,
                        func_kw=dict(method='BayesShrink', mode='soft', wavelet='db1', sigma=sigma, rescale_sigma=True))
  poisson zeta (y = zeta Poisson(x / zeta)):
    nlm-anscombe  a = 2 sqrt(y / zeta + 3/8) has unit noise variance; NLM with sigma 1 (h 0.6) as above, then the
                  closed-form unbiased inverse of Makitalo & Foi (2011), times zeta.
  gamma k (y = x g, g ~ Gamma(k, 1/k)):
    nlm-log       l = log(max(y, 0.5/255)) has additive noise of mean psi(k) - log k and std sqrt(psi'(k)) (0.1003 at
                  k = 100); NLM with that sigma, then exp(l_hat - (psi(k) - log k)).
    nlm-direct    NLM on y itself with sigma = mean(y) / sqrt(k) (the noise std at the mean intensity).
"""
import json
import sys
import time

import numpy as np
import skimage
from scipy.special import polygamma, psi
from skimage.restoration import cycle_spin, denoise_nl_means, denoise_tv_chambolle, denoise_wavelet


def psnr(x, xhat):
    mse = np.mean((np.clip(xhat, 0.0, 1.0) - x) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def nlm(y, sigma):
    return denoise_nl_means(y, patch_size=5, patch_distance=6, h=0.6 * sigma, fast_mode=True, sigma=sigma)


def gaussian_methods(sigma):
    return {
        'nlm': lambda y: nlm(y, sigma),
        'tv': lambda y: denoise_tv_chambolle(y, weight=0.08, eps=1e-6, max_num_iter=1000),
        'wavelet': lambda y: cycle_spin(
            y,
            func=denoise_wavelet,
            max_shifts=3,
            num_workers=1,
            func_kw=dict(method='BayesShrink', mode='soft', wavelet='db1', sigma=sigma, rescale_sigma=True),
        ),
    }


def inverse_anscombe(a):
    """Makitalo & Foi's closed-form approximation of the exact unbiased inverse of the Anscombe transform."""
    a = np.maximum(a, 1e-6)
    s = np.sqrt(1.5)
    return np.maximum(0.25 * a**2 + 0.25 * s / a - 1.375 / a**2 + 0.625 * s / a**3 - 0.125, 0.0)


def poisson_methods(zeta):
    def nlm_anscombe(y):
        a = 2.0 * np.sqrt(y / zeta + 0.375)
        return zeta * inverse_anscombe(nlm(a, 1.0))

    return {'nlm-anscombe': nlm_anscombe}


def gamma_methods(k):
    log_mean = float(psi(k) - np.log(k))
    log_std = float(np.sqrt(polygamma(1, k)))

    def nlm_log(y):
        l = np.log(np.maximum(y, 0.5 / 255.0))
        return np.exp(nlm(l, log_std) - log_mean)

    def nlm_direct(y):
        return nlm(y, float(np.mean(y)) / np.sqrt(k))

    return {'nlm-log': nlm_log, 'nlm-direct': nlm_direct}


def nlm_once(path, width, height, sigma):
    """One timed NLM call on one noisy image (the interleaved speed rounds of run.ts): after a warm-up on a crop,
    prints {"seconds", "cpuSeconds"}."""
    y = np.fromfile(path, dtype='<f4').reshape(height, width).astype(np.float64)
    nlm(y[:64, :64], sigma)
    t, c = time.perf_counter(), time.process_time()
    nlm(y, sigma)
    print(json.dumps({'seconds': time.perf_counter() - t, 'cpuSeconds': time.process_time() - c}))


def main():
    if sys.argv[1] == '--nlm-once':
        nlm_once(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        return
    index_path = sys.argv[1]
    families = ['gaussian', 'poisson', 'gamma']
    if len(sys.argv) > 3 and sys.argv[2] == '--families':
        families = sys.argv[3].split(',')
    with open(index_path) as f:
        index = json.load(f)
    levels = index['levels']
    factories = {
        'gaussian': lambda: gaussian_methods(levels['gaussian']),
        'poisson': lambda: poisson_methods(levels['poisson']),
        'gamma': lambda: gamma_methods(levels['gamma']),
    }
    results = {'skimage': skimage.__version__, 'numpy': np.__version__, 'families': {}}
    for family in families:
        methods = factories[family]()
        per_method = {name: [] for name in methods}
        for image in index['images']:
            w, h = image['width'], image['height']
            x = np.fromfile(image['clean'], dtype=np.uint8).reshape(h, w).astype(np.float64) / 255.0
            # float32 on disk (what the network sees); the classical methods get it as float64.
            y = np.fromfile(image['noisy'][family], dtype='<f4').reshape(h, w).astype(np.float64)
            for name, method in methods.items():
                if not per_method[name]:
                    method(y[:64, :64])  # warm-up: imports, first-call overheads
                t, c = time.perf_counter(), time.process_time()
                out = method(y)
                seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - c
                per_method[name].append(
                    {'name': image['name'], 'psnr': psnr(x, out), 'seconds': seconds, 'cpuSeconds': cpu_seconds,
                     'width': w, 'height': h}
                )
            print(f'{family} {image["name"]} done', file=sys.stderr, flush=True)
        results['families'][family] = per_method
    print(json.dumps(results))


if __name__ == '__main__':
    main()
