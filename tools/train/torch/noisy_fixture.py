#!/usr/bin/env python3
"""
Writes the parity fixture of Noise2Score's noisy-only training (--images, no clean image) on the PyTorch path: for
each noise family, four small noisy 8-bit images (a scene, a flat one, a half-saturated one, one with a black 2x2
block in every 8x8 tile), the levels that noise2score.py estimates (per 48x48 crop: Gaussian sigma, Gamma k; per
image: Poisson zeta), and one AR-DAE batch built from 32x32 crops with a given perturbation u, with its loss under a
tiny score network whose weights are in the file. Besides, a larger image textured everywhere (WIDE_WIDTH x
WIDE_HEIGHT: enough tiles that the fixed fraction is more than MIN_TILES and less than all of them) with its
unclamped level; for Gamma also the level of the fixed fraction of tiles alone and that of the noise-consistent tiles
without the texture correction, which must both differ from the level, or the fixture would not check those rules
(this script then fails). tools/train/torch/parity.ts
recomputes all of it with the TypeScript (estimatePatchLevel, estimateNoiseLevel, perturbationScale, lossSigma,
arDaeLoss): test/train/noisy-parity.test.ts on the committed fixture (no Python), `npm run check:torch` on a fresh one.

    /usr/bin/python3 tools/train/torch/noisy_fixture.py test/fixtures/train/noise2score-noisy-parity.json
"""
import base64
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noise2score import (FAMILY, WEAK_TEXTURE_KEEP, ScoreNet, _eight_bit, _kept_blocks,  # noqa: E402
                         _kept_count, _noise_consistent_level, _trimmed_chi2_mean, antithetic_batch,
                         estimate_image_zetas, estimate_levels, estimate_patch_levels, full_precision, texture_tiles)

HEIGHT, WIDTH, LEVEL_CROP, PATCH = 60, 64, 48, 32
CROPS = [(0, 5, 9), (2, 20, 24)]  # (image, top, left) of the batch's crops
C = {'gaussian': 0.8, 'poisson': 0.5, 'gamma': 0.5}
NOISE = {'gaussian': 25 / 255, 'poisson': 0.02, 'gamma': 100.0}
WIDTHS = [4, 8, 8]
WIDE_HEIGHT, WIDE_WIDTH = 120, 128
WIDE_SEED = 4  # one where the noise-consistent rule moves Gamma's k (it does on about half the seeds)


def b64(array, dtype):
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode('ascii')


def add_noise(family, scene, rng):
    """The family's noise at NOISE[family] on a clean scene."""
    level = NOISE[family]
    if family == 'gaussian':
        return scene + level * rng.standard_normal(scene.shape)
    if family == 'poisson':
        return level * rng.poisson(scene / level)
    return scene * rng.gamma(level, 1 / level, scene.shape)


def to_u8(v):
    return np.clip(np.round(v * 255), 0, 255).astype(np.uint8)


def wide_of(family, rng):
    """A grey scene textured everywhere (eight random gratings of up to 10 cycles, whose amplitude grows from left to
    right), with the family's noise, as a [WIDE_HEIGHT, WIDE_WIDTH] uint8 image."""
    r, c = np.mgrid[0:WIDE_HEIGHT, 0:WIDE_WIDTH].astype(np.float64)
    waves = rng.uniform([-10, -10, 0], [10, 10, 2 * np.pi], (8, 3))
    field = sum(np.sin(2 * np.pi * (fx * c / WIDE_WIDTH + fy * r / WIDE_HEIGHT) + ph) for fx, fy, ph in waves)
    scene = 0.45 + (0.1 + 0.1 * c / WIDE_WIDTH) * field / np.sqrt(len(waves))
    return to_u8(add_noise(family, scene, rng))


def fixed_fraction_gamma(y):
    """Gamma k of the fixed fraction of tiles alone (the estimator before its noise-consistent rule), y [n, h, w]."""
    y = y.double()
    ratios, valid, _, usable, rank = texture_tiles(y, 'gamma', _eight_bit(y).double() / (12 * 255 * 255))
    kept = _kept_blocks(valid, usable, rank, _kept_count(usable, WEAK_TEXTURE_KEEP['gamma']))
    return 1 / _trimmed_chi2_mean(ratios, kept)


def uncorrected_gamma(y):
    """Gamma k of the noise-consistent tiles without the texture correction (the estimator before it), y [n, h, w]."""
    y = y.double()
    tiles = texture_tiles(y, 'gamma', _eight_bit(y).double() / (12 * 255 * 255))
    return 1 / _noise_consistent_level(*tiles, _trimmed_chi2_mean)


def images_of(family, rng):
    """A scene (gradient, a bright square, a dark band), a flat grey image without noise, a scene whose top half
    is white, and one with a black 2x2 block in every 8x8 tile (all tiles clipped: the estimators use them all then):
    noisy, rounded to 8 bits and clipped, as a [4, HEIGHT, WIDTH] uint8 stack."""
    r, c = np.mgrid[0:HEIGHT, 0:WIDTH]
    scene = (0.2 + 0.5 * c / WIDTH + 0.1 * r / HEIGHT).astype(np.float64)
    scene[12:40, 16:44] = 0.8
    scene[44:52, :] = 0.01
    noisy = add_noise(family, scene, rng)
    white = noisy.copy()
    white[:HEIGHT // 2] = 1.0
    flat = np.full(scene.shape, 128 / 255)
    dotted = noisy.copy()
    for dr, dc in ((2, 4), (2, 5), (3, 4), (3, 5)):  # a 2x2 block of each 8x8 tile (Poisson, Gamma: too dark to count)
        dotted[dr::8, dc::8] = 0.0
    return np.stack([to_u8(v) for v in (noisy, flat, white, dotted)])


def main(out):
    torch.manual_seed(7)
    rng = np.random.default_rng(2026)
    wide_rng = np.random.default_rng(WIDE_SEED)
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
        wide_u8 = wide_of(family, wide_rng)
        wide = torch.from_numpy(wide_u8).float()[None] / 255
        wide_level = float(estimate_levels(family, wide)[0])
        wide_fixed = float(fixed_fraction_gamma(wide)[0]) if family == 'gamma' else None
        wide_plain = float(uncorrected_gamma(wide)[0]) if family == 'gamma' else None
        if wide_fixed is not None and abs(wide_level / wide_fixed - 1) < 0.01:
            sys.exit(f'the wide Gamma image reads k {wide_level:.2f} with the noise-consistent rule and '
                     f'{wide_fixed:.2f} without: it does not check the rule (change WIDE_SEED)')
        if wide_plain is not None and abs(wide_level / wide_plain - 1) < 0.005:
            sys.exit(f'the wide Gamma image reads k {wide_level:.2f} with the texture correction and '
                     f'{wide_plain:.2f} without: it does not check the correction (change WIDE_SEED)')
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
            'wide': {'height': WIDE_HEIGHT, 'width': WIDE_WIDTH, 'u8': b64(wide_u8, 'u1'), 'level': wide_level,
                     **({'fixedFractionLevel': wide_fixed} if wide_fixed is not None else {}),
                     **({'uncorrectedLevel': wide_plain} if wide_plain is not None else {})},
        }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')
    gamma = fixture['families']['gamma']['wide']
    print(f"wrote {out}: " + ', '.join(f"{k} loss {v['loss']:.6f}" for k, v in fixture['families'].items()) +
          f", wide Gamma k {gamma['level']:.3f} (fixed fraction of tiles: {gamma['fixedFractionLevel']:.3f}, "
          f"without the texture correction: {gamma['uncorrectedLevel']:.3f})")


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: noisy_fixture.py OUT.json')
    main(sys.argv[1])
