"""Python side of `npm run bench:mid`: colour NLM (scikit-image, OpenCV) on the PolyU validation crops written by
bench/mid.ts.

Usage: /usr/bin/python3 bench/mid_nlm.py INDEX.json
INDEX.json: {"images": [{"name", "width", "height", "noisy": path of raw little-endian float32 RGB (interleaved,
row-major, y = u8/255)}], "outDir": folder, "tune": [{"noisy", "clean": paths of raw 8-bit RGB, "width", "height"}]
(the crops of the TRAINING scenes, for OpenCV's h), "opencvH": [h values to try]}. For each image and each variant, writes the denoised RGB (float32,
clipped to [0, 1]) to <outDir>/<variant>-<index>.f32 and prints one JSON object with the sigma used and the
seconds per image (time.perf_counter around the denoiser call alone, after one warm-up on a small crop).

Variants (skimage 0.19 API: channel_axis=-1):
  nlm         sigma = estimate_sigma(y, channel_axis=-1, average_sigmas=True) (what the issue asks for: the wavelet
              MAD, which reads these JPEG crops as nearly noise-free), h = 0.8 sigma, patch 5, distance 6, fast mode
  nlm-coarse  the same NLM with sigma from the scale-2 trimmed Haar estimate that MID uses for its round-0 sampler
              (src/mid/sampler.ts estimateSigmaCoarse, re-implemented below): a fairer classical baseline
  opencv      cv2.fastNlMeansDenoisingColored(y8, h, hColor = h, template 7, search 21) on the 8-bit noisy image
              (RGB turned to OpenCV's BGR and back), h = hColor chosen as the best mean PSNR over the "tune" crops
              (training scenes); the validation crops never choose it
"""
import json
import sys
import time

import cv2
import numpy as np
import skimage
from skimage.restoration import denoise_nl_means, estimate_sigma


def coarse_sigma(plane):
    h, w = plane.shape
    h2, w2 = h // 2, w // 2
    p = plane[: 2 * h2, : 2 * w2]
    coarse = (p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]) / 2.0
    c = coarse[: coarse.shape[0] // 2 * 2, : coarse.shape[1] // 2 * 2]
    d = ((c[0::2, 0::2] - c[0::2, 1::2] - c[1::2, 0::2] + c[1::2, 1::2]) / 2.0) ** 2
    d = np.sort(d.ravel())
    k = max(1, int(np.floor(0.9 * d.size)))
    return float(np.sqrt(d[:k].mean() / 0.6231))


def nlm(y, sigma):
    return denoise_nl_means(
        y, patch_size=5, patch_distance=6, h=0.8 * sigma, sigma=sigma, fast_mode=True, channel_axis=-1
    )


def opencv(y8, h):
    bgr = np.ascontiguousarray(y8[:, :, ::-1])
    return cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)[:, :, ::-1].astype(np.float64) / 255.0


def tune_opencv(tune, grid):
    """Mean PSNR per h over the tuning crops; the best h."""
    table = {}
    for h in grid:
        values = []
        for im in tune:
            shape = (im['height'], im['width'], 3)
            y8 = np.fromfile(im['noisy'], dtype=np.uint8).reshape(shape)
            x = np.fromfile(im['clean'], dtype=np.uint8).reshape(shape).astype(np.float64) / 255.0
            values.append(10 * np.log10(1.0 / np.mean((opencv(y8, h) - x) ** 2)))
        table[h] = float(np.mean(values))
    return max(table, key=table.get), table


def main():
    index = json.load(open(sys.argv[1]))
    out_dir = index['outDir']
    results = {'skimage': skimage.__version__, 'numpy': np.__version__, 'opencv': cv2.__version__, 'images': []}
    best_h, table = tune_opencv(index['tune'], index['opencvH'])
    results['opencvTuning'] = {'h': best_h, 'meanPsnrByH': table, 'crops': len(index['tune'])}
    warm = np.random.default_rng(0).random((32, 32, 3))
    nlm(warm, 0.02)
    for i, im in enumerate(index['images']):
        y = np.fromfile(im['noisy'], dtype='<f4').astype(np.float64).reshape(im['height'], im['width'], 3)
        entry = {'name': im['name']}
        sigmas = {
            'nlm': float(estimate_sigma(y, channel_axis=-1, average_sigmas=True)),
            'nlm-coarse': float(np.median([coarse_sigma(y[:, :, c]) for c in range(3)])),
        }
        for variant, sigma in sigmas.items():
            # NLM with sigma = 0 would divide by zero in its weights; the estimate is floored at 1e-4 (0.03/255).
            s = max(sigma, 1e-4)
            t = time.perf_counter()
            xhat = nlm(y, s)
            seconds = time.perf_counter() - t
            np.clip(xhat, 0.0, 1.0).astype('<f4').tofile(f'{out_dir}/{variant}-{i}.f32')
            entry[variant] = {'sigma255': sigma * 255.0, 'seconds': seconds}
        y8 = np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)
        t = time.perf_counter()
        xhat = opencv(y8, best_h)
        seconds = time.perf_counter() - t
        xhat.astype('<f4').tofile(f'{out_dir}/opencv-{i}.f32')
        entry['opencv'] = {'sigma255': float(best_h), 'seconds': seconds}
        results['images'].append(entry)
    print(json.dumps(results))


if __name__ == '__main__':
    main()
