#!/usr/bin/env python3
"""
Writes the parity fixture of Noise2Score's noisy-only training (--images, no clean image) on the PyTorch path: for
each noise family, three small noisy 8-bit images (a scene, a flat one, a half-saturated one), the levels that
noise2score.py estimates (per 48x48 crop: Gaussian sigma, Gamma k; per image: Poisson zeta), and one AR-DAE batch
built from 32x32 crops with a given perturbation u, with its loss under a tiny score network whose weights are in
the file. tools/train/torch/parity.ts recomputes all of it with the TypeScript trainer (estimatePatchLevel,
perturbationScale, lossSigma, arDaeLoss): test/train/noisy-parity.test.ts on the committed fixture (no Python),
`npm run check:torch` on a fresh one.

    /usr/bin/python3 tools/train/torch/noisy_fixture.py test/fixtures/train/noise2score-noisy-parity.json
"""
import base64
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noise2score import (FAMILY, ScoreNet, antithetic_batch, estimate_image_zetas,  # noqa: E402
                         estimate_patch_levels, full_precision)

HEIGHT, WIDTH, LEVEL_CROP, PATCH = 60, 64, 48, 32
CROPS = [(0, 5, 9), (2, 20, 24)]  # (image, top, left) of the batch's crops
C = {'gaussian': 0.8, 'poisson': 0.5, 'gamma': 0.5}
NOISE = {'gaussian': 25 / 255, 'poisson': 0.02, 'gamma': 100.0}
WIDTHS = [4, 8, 8]


def b64(array, dtype):
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode('ascii')


def images_of(family, rng):
    """A scene (gradient, a bright square, a dark band), a flat grey image without noise, and a scene whose top half
    is white: noisy, rounded to 8 bits and clipped, as a [3, HEIGHT, WIDTH] uint8 stack."""
    r, c = np.mgrid[0:HEIGHT, 0:WIDTH]
    scene = (0.2 + 0.5 * c / WIDTH + 0.1 * r / HEIGHT).astype(np.float64)
    scene[12:40, 16:44] = 0.8
    scene[44:52, :] = 0.01
    level = NOISE[family]
    if family == 'gaussian':
        noisy = scene + level * rng.standard_normal(scene.shape)
    elif family == 'poisson':
        noisy = level * rng.poisson(scene / level)
    else:
        noisy = scene * rng.gamma(level, 1 / level, scene.shape)
    white = noisy.copy()
    white[:HEIGHT // 2] = 1.0
    flat = np.full(scene.shape, 128 / 255)
    return np.stack([np.clip(np.round(v * 255), 0, 255) for v in (noisy, flat, white)]).astype(np.uint8)


def main(out):
    torch.manual_seed(7)
    rng = np.random.default_rng(2026)
    net = ScoreNet((4, 8, 8), 1.0)
    fixture = {
        'about': 'tools/train/torch/noisy_fixture.py (PyTorch %s): noisy-only Noise2Score, PyTorch against the '
                 'TypeScript trainer (tools/train/torch/parity.ts)' % torch.__version__,
        'height': HEIGHT, 'width': WIDTH, 'levelCrop': LEVEL_CROP, 'patch': PATCH, 'crops': CROPS,
        'architecture': {'kind': 'unet', 'widths': WIDTHS},
        'weights': [{'name': n, 'shape': list(v.shape), 'f32': b64(v, '<f4')} for n, v in net.tfjs_weights()],
        'families': {},
    }
    for family in sorted(FAMILY):
        u8 = images_of(family, rng)
        images = torch.from_numpy(u8).float() / 255
        levels = estimate_patch_levels(family, images[:, :LEVEL_CROP, :LEVEL_CROP])
        zetas = estimate_image_zetas(images) if family == 'poisson' else None
        noisy = torch.stack([images[i, t:t + PATCH, l:l + PATCH] for i, t, l in CROPS])
        level = zetas[[i for i, _, _ in CROPS]] if family == 'poisson' else estimate_patch_levels(family, noisy)
        u = torch.from_numpy(rng.standard_normal(noisy.shape).astype(np.float32))
        inputs, noise, loss_scale = antithetic_batch(family, noisy, level, C[family], u)
        net.out_scale = FAMILY[family]['out_scale']
        with full_precision():
            loss = torch.mean(torch.square(noise + loss_scale * net(inputs)))
        fixture['families'][family] = {
            'u8': b64(u8, 'u1'),
            'outputScale': FAMILY[family]['out_scale'],
            'cropLevels': levels.tolist(),
            **({'imageZetas': zetas.tolist()} if zetas is not None else {}),
            'c': C[family],
            'u': b64(u.numpy(), '<f4'),
            'batchLevels': level.tolist(),
            'lossScale': loss_scale[:len(CROPS), 0, 0, 0].tolist(),
            'loss': float(loss),
        }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')
    print(f"wrote {out}: " + ', '.join(f"{k} loss {v['loss']:.6f}" for k, v in fixture['families'].items()))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: noisy_fixture.py OUT.json')
    main(sys.argv[1])
