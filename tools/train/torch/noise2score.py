#!/usr/bin/env python3
"""
GPU trainer for the Noise2Score score network: a PyTorch port of tools/train/noise2score.ts (same network, same
AR-DAE loss with antithetic pairs, same blind noise levels and relative sigma_a rule, same warm-up + cosine
learning rate), for machines with a CUDA GPU. It is a training tool only: the service, its tests and CI never run
Python. Its output is imported by `npx tsx tools/train/torch/import-noise2score.ts`, which rebuilds the tf.js network,
checks it against a probe computed here (same input, same output to 1e-3), measures Set12 with the TypeScript
protocol and writes the model folder with its manifest.

Layout: the network runs NCHW; space-to-depth / depth-to-space reproduce the channel order of the tf.js layers
(src/denoise/network.ts) and convolutions reproduce TF's 'same' padding (a stride-2 convolution on an even size pads
one row/column at the bottom/right only). Weights are written in tf.js layout ([kh, kw, in, out]) under the tf.js
weight names (conv1/kernel, conv1/bias, ...).

Data: `--images` is a uint8 stack written by `npx tsx tools/train/torch/pack-images.ts <dir> <out>` (sharp's decoding,
the same as the TypeScript trainer's, rounded to 8 bits), so this script needs no image library. By default they are
clean and noise of the family is synthesised at a random level per crop; with `--noisy` they are the user's noisy
images, used as they are, as `npm run train -- noise2score --images DIR` does: the level of each crop is estimated
(Gaussian sigma, Gamma k: estimate_levels, a port of src/denoise/estimate.ts; Poisson zeta once per image) and drives
the same relative sigma_a rule (noisy_fixture.py + tools/train/torch/parity.ts check both against the TypeScript).

    python3 tools/train/torch/noise2score.py --noise gaussian --images <packed> --steps 40000 --batch 128 \
        --patch 64 --lr 4e-4 --init-from models/noise2score-gaussian/v5 --out <dir> --seed 81 --max-seconds 300

`--architecture` trains another U-Net of network.ts (widths, add-skips, convolutions per stage), and `--teacher`
replaces the AR-DAE loss by distillation from a committed network averaged over the symmetries of the square
(tools/train/torch/gpu-run-distill.sh).
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # layers.py, next to this file
from layers import ConvNet, depth_to_space, space_to_depth, unet_convolutions  # noqa: E402

FAMILY = {
    # level range, log-uniform, relative sigma_a c (start, end), output scale: FAMILY_TRAINING in noise2score.ts
    'gaussian': dict(level=(3.5 / 255, 55 / 255), log=False, c=(1.0, 0.7), out_scale=32.0),
    'poisson': dict(level=(0.004, 0.1), log=True, c=(0.5, 0.5), out_scale=2.0),
    'gamma': dict(level=(50.0, 150.0), log=False, c=(0.5, 0.5), out_scale=32.0),
}


def read_tensors(directory):
    """tools/train/tensor-file.ts: tensors.json (name, shape, offset, length) + tensors.bin (float32)."""
    specs = json.load(open(os.path.join(directory, 'tensors.json')))
    values = np.fromfile(os.path.join(directory, 'tensors.bin'), dtype='<f4')
    return {s['name']: values[s['offset']:s['offset'] + s['length']].reshape(s['shape']) for s in specs}


def write_tensors(directory, named):
    os.makedirs(directory, exist_ok=True)
    specs, chunks, offset = [], [], 0
    for name, array in named:
        a = np.ascontiguousarray(array, dtype='<f4')
        specs.append({'name': name, 'shape': list(a.shape), 'offset': offset, 'length': int(a.size)})
        chunks.append(a.reshape(-1))
        offset += a.size
    tmp = os.path.join(directory, 'tensors.bin.partial')
    np.concatenate(chunks).tofile(tmp)
    os.replace(tmp, os.path.join(directory, 'tensors.bin'))
    with open(os.path.join(directory, 'tensors.json'), 'w') as f:
        json.dump(specs, f)


def read_layers_model(directory):
    """Weights of a tf.js layers model folder (model.json + weight shards), by weight name, tf.js layout."""
    model = json.load(open(os.path.join(directory, 'model.json')))
    out = {}
    for group in model['weightsManifest']:
        data = b''.join(open(os.path.join(directory, p), 'rb').read() for p in group['paths'])
        offset = 0
        for w in group['weights']:
            if w['dtype'] != 'float32':
                raise ValueError(f"{w['name']}: dtype {w['dtype']} not supported")
            n = int(np.prod(w['shape'])) if w['shape'] else 1
            out[w['name']] = np.frombuffer(data, dtype='<f4', count=n, offset=offset).reshape(w['shape'])
            offset += 4 * n
    return out


def read_images(prefix):
    """pack-images.ts: <prefix>.json and the stack, <prefix>.u8 (uint8) or, when the meta says depth 16,
    <prefix>.u16 (uint16 little-endian, returned as int32: PyTorch 1.13 has no uint16). Divide by pack_max(meta)."""
    meta = json.load(open(prefix + '.json'))
    shape = (meta['count'], meta['height'], meta['width'])
    if meta.get('depth', 8) == 16:
        return np.fromfile(prefix + '.u16', dtype='<u2').reshape(shape).astype(np.int32), meta
    return np.fromfile(prefix + '.u8', dtype=np.uint8).reshape(shape), meta


def pack_max(meta):
    """The sample value of white in a pack of pack-images.ts: 65535 for a 16-bit one, else 255."""
    return 65535 if meta.get('depth', 8) == 16 else 255


def unit_images(raw, meta, device):
    """The stack read_images returned as float32 on [0, 1] on `device` (the pixels tools/train/data.ts reads)."""
    return torch.from_numpy(raw).to(device).float() / pack_max(meta)


def image_sizes(meta, device, patch):
    """The [height, width] of each packed image when they differ (pack-images.ts pads them to the largest), else
    None; exits when one is smaller than a crop."""
    sizes = meta.get('sizes') or [[meta['height'], meta['width']]]
    small = [f"{n} ({w}x{h})" for n, (h, w) in zip(meta.get('names', ['?'] * len(sizes)), sizes) if min(h, w) < patch]
    if small:
        sys.exit(f"images smaller than the {patch}x{patch} crops: {', '.join(small[:5])}")
    return torch.tensor(meta['sizes'], device=device) if 'sizes' in meta else None


def random_crops(images, size, count, gen, with_index=False, sizes=None):
    """samplePatch() of tools/train/data.ts, vectorised: count random size x size crops of random images, each under a
    random one of the 8 symmetries of the square (bit 0: transpose, bit 1: flip rows, bit 2: flip columns). With
    `with_index`, also the index of each crop's image; `sizes` ([n, 2], image_sizes): each crop inside its image."""
    n, h, w = images.shape
    device = images.device
    idx = torch.randint(n, (count,), generator=gen, device=device)
    if sizes is None:
        top = torch.randint(h - size + 1, (count,), generator=gen, device=device)
        left = torch.randint(w - size + 1, (count,), generator=gen, device=device)
    else:
        room = sizes[idx] - size + 1
        top = (torch.rand(count, generator=gen, device=device) * room[:, 0]).long().clamp(max=h - size)
        left = (torch.rand(count, generator=gen, device=device) * room[:, 1]).long().clamp(max=w - size)
    ar = torch.arange(size, device=device)
    x = images[idx[:, None, None], top[:, None, None] + ar[None, :, None], left[:, None, None] + ar[None, None, :]]
    sym = torch.randint(8, (count,), generator=gen, device=device)
    x = torch.where((sym & 1).bool()[:, None, None], x.transpose(1, 2), x)
    x = torch.where((sym & 2).bool()[:, None, None], x.flip(1), x)
    x = torch.where((sym & 4).bool()[:, None, None], x.flip(2), x)
    return (x, idx) if with_index else x


@contextlib.contextmanager
def full_precision():
    """No TF32 convolutions inside (for the probe: TF32 would differ from tf.js by ~1e-3 relative)."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def load_checkpoint(path, device, net, opt, gen):
    """Restores net, optimiser and generator from `path`; returns the whole saved dict (step, elapsed, log, ...)."""
    state = torch.load(path, map_location=device, weights_only=False)
    net.load_state_dict(state['net'])
    opt.load_state_dict(state['opt'])
    gen.set_state(state['gen'].cpu())  # a generator's state is a CPU ByteTensor, whatever its device
    print(f"resumed at step {state['step']}", flush=True)
    return state


def save_checkpoint(path, state):
    """Writes `state` next to `path` and renames it over, so a crash never leaves half a checkpoint."""
    torch.save(state, path + '.partial')
    os.replace(path + '.partial', path)


def add_run_arguments(p):
    """The options every GPU trainer here takes: data, length, output, seed, wall-clock limit, checkpoints, device."""
    p.add_argument('--images', required=True, help='prefix of <prefix>.u8 + <prefix>.json (pack-images.ts)')
    p.add_argument('--steps', type=int, required=True)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--out', required=True)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--max-seconds', type=float, default=0,
                   help='also end the schedule by this wall-clock time: progress = max(step/steps, time/limit)')
    p.add_argument('--checkpoint-seconds', type=float, default=60)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')


class TrainingClock:
    """The bookkeeping of a training loop: the step, wall-clock progress max(step / steps, time / max_seconds), the
    loss sampled every `sample_every` steps and logged every 2000, and a checkpoint every `checkpoint_seconds`.
    Between log entries a progress line (step, steps/s, ETA) is printed every PROGRESS_SECONDS, so a slow run (the
    CPU) is not silent; it does not go into the log."""

    PROGRESS_SECONDS = 30

    def __init__(self, args, sample_every, save, state=None):
        self.steps, self.max_seconds, self.checkpoint_seconds = args.steps, args.max_seconds, args.checkpoint_seconds
        self.sample_every, self.save = sample_every, save
        self.step = state['step'] if state else 0
        self.elapsed_before = state['elapsed'] if state else 0.0
        self.log = state['log'] if state else []
        self.start = self.last_checkpoint = self.last_progress = time.time()
        self.start_step = self.step
        self.running, self.count = 0.0, 0
        self.progress = self.step / self.steps

    def elapsed(self):
        return self.elapsed_before + time.time() - self.start

    def record(self, loss, **fields):
        """After an optimiser step: advance, sample the loss, log, checkpoint. The fields go into the log entry."""
        self.step += 1
        elapsed = self.elapsed()
        self.progress = max(self.step / self.steps, elapsed / self.max_seconds if self.max_seconds > 0 else 0)
        done = self.progress >= 1
        if self.step % self.sample_every == 0 or done:
            value = float(loss)
            if not math.isfinite(value):
                sys.exit(f'loss is {value} at step {self.step}: lower --lr')
            self.running += value
            self.count += 1
        if self.step % 2000 == 0 or done:
            entry = {'step': self.step, 'loss': self.running / max(self.count, 1), **fields,
                     'seconds': round(elapsed, 1)}
            self.log.append(entry)
            print(json.dumps(entry), flush=True)
            self.running, self.count = 0.0, 0
        now = time.time()
        if now - self.last_progress > self.PROGRESS_SECONDS and not done:
            rate = (self.step - self.start_step) / max(now - self.start, 1e-9)
            eta = (self.steps - self.step) / max(rate, 1e-9)
            if self.max_seconds > 0:
                eta = min(eta, self.max_seconds - elapsed)
            print(f'step {self.step}/{self.steps}, {rate:.2f} steps/s, {elapsed:.0f} s, ETA {max(eta, 0):.0f} s',
                  flush=True)
            self.last_progress = now
        if time.time() - self.last_checkpoint > self.checkpoint_seconds and not done:
            self.save()
            self.last_checkpoint = time.time()

    def state(self):
        return {'step': self.step, 'elapsed': self.elapsed(), 'log': self.log}


class ScoreNet(ConvNet):
    """buildScoreNetwork(tf, {kind: 'unet', widths, outputScale, skip, convs}) of src/denoise/network.ts."""

    def __init__(self, widths=(32, 64, 128), out_scale=32.0, skip='concat', convs=(2, 2, 3, 2, 2)):
        super().__init__()
        if skip not in ('concat', 'add') or len(convs) != 5 or min(convs) < 1:
            raise ValueError(f'bad architecture: skip {skip}, convs {convs}')
        self.out_scale, self.skip = out_scale, skip
        # name, in, out, kernel, stride, relu: in the order buildScoreNetwork numbers them.
        self.specs, self.stages = unet_convolutions(4, widths, convs, 2 if skip == 'concat' else 1, 4, 'out')
        self.make_weights(self.he_normal)

    @staticmethod
    def he_normal(name, cin, cout, k, relu):
        w = torch.empty(cout, cin, k, k)
        return torch.nn.init.normal_(w, 0.0, math.sqrt(2.0 / (k * k * cin)))  # He-normal (fan in)

    @classmethod
    def from_architecture(cls, arch):
        """From the architecture object of src/denoise/network.ts (kind 'unet')."""
        if arch.get('kind', 'unet') != 'unet':
            raise ValueError(f"only the 'unet' score network is ported, not {arch.get('kind')}")
        return cls(tuple(arch['widths']), float(arch['outputScale']), arch.get('skip', 'concat'),
                   tuple(arch.get('convs', (2, 2, 3, 2, 2))))

    def join(self, a, b):
        return torch.cat([a, b], 1) if self.skip == 'concat' else a + b

    def forward(self, y):  # y: [n, 1, h, w], h and w multiples of 8
        e1 = self.run('e1', space_to_depth(y, 2))
        e2 = self.run('e2', e1)
        bottom = self.run('bottom', e2)
        d2 = self.run('d2', self.join(depth_to_space(self.run('up2', bottom), 2), e2))
        features = self.run('d1', self.join(depth_to_space(self.run('up1', d2), 2), e1))
        return depth_to_space(self.run('out', features), 2) * self.out_scale


def learning_rate(peak, progress, warmup):
    """learningRate() of noise2score.ts on a progress fraction: linear warm-up, then cosine to 2% of the peak."""
    if progress < warmup:
        return peak * max(progress, 1e-3) / warmup
    t = min(1.0, (progress - warmup) / (1 - warmup))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def noisy_crops(family, images, count, patch, gen, device, sizes=None):
    """`count` random crops with noise of the family at random levels of its blind range: (x, noisy, level)."""
    spec = FAMILY[family]
    x = random_crops(images, patch, count, gen, sizes=sizes)
    lo, hi = spec['level']
    r = torch.rand(count, generator=gen, device=device)
    level = lo * (hi / lo) ** r if spec['log'] else lo + (hi - lo) * r
    lv = level[:, None, None]
    if family == 'gaussian':
        noisy = x + lv * torch.randn(x.shape, generator=gen, device=device)
    elif family == 'poisson':
        noisy = lv * torch.poisson(x.clamp(min=0) / lv, generator=gen)
    else:
        g = torch._standard_gamma(lv.expand_as(x).contiguous(), generator=gen)
        noisy = x * g / lv
    return x, noisy, level


def make_batch(family, images, batch, patch, c, gen, device, sizes=None):
    """makeBatch() of noise2score.ts with clean images (--clean-dir), vectorised: batch/2 noisy patches (noise of the
    family synthesised at a random level each), each with +u and -u."""
    _, noisy, level = noisy_crops(family, images, batch // 2, patch, gen, device, sizes)
    return antithetic_batch(family, noisy, level, c, torch.randn(noisy.shape, generator=gen, device=device))


def make_noisy_batch(family, images, zetas, batch, patch, c, gen, device, sizes=None):
    """makeBatch() of noise2score.ts with noisy images only (--images), vectorised: batch/2 crops of the noisy images
    as they are, each with +u and -u. The level of a crop is unknown: Gaussian sigma and Gamma k are estimated on the
    crop (estimatePatchLevel), Poisson zeta once per image (`zetas`, from estimate_image_zetas)."""
    noisy, idx = random_crops(images, patch, batch // 2, gen, with_index=True, sizes=sizes)
    level = zetas[idx] if family == 'poisson' else estimate_patch_levels(family, noisy)
    return antithetic_batch(family, noisy, level, c, torch.randn(noisy.shape, generator=gen, device=device))


def antithetic_batch(family, noisy, level, c, u):
    """The AR-DAE batch of noisy crops [n, h, w] of known or estimated `level` [n] (sigma / zeta / k) with the
    perturbation u [n, h, w]: inputs y + s u and y - s u (s: perturbationScale of noise2score.ts, times zeta on the
    count scale for Poisson), the noise (u, -u) and the loss's sigma_a (lossSigma), as [2n, 1, h, w] /
    [2n, 1, h, w] / [2n, 1, 1, 1]."""
    mean = noisy.mean((1, 2))
    if family == 'gaussian':
        pert = c * level
    elif family == 'gamma':
        pert = c * mean.clamp(min=1 / 255) / level.sqrt()
    else:
        pert = c * (mean / level).clamp(min=1).sqrt()
    scale = level * pert if family == 'poisson' else pert
    loss_scale = pert / (1 + c * c) if family == 'poisson' else pert
    s = scale[:, None, None]
    inputs = torch.cat([noisy + s * u, noisy - s * u])[:, None]
    return inputs, torch.cat([u, -u])[:, None], torch.cat([loss_scale, loss_scale])[:, None, None, None]


# ---- Blind level estimation: a port of src/denoise/estimate.ts (weakest-textured 8x8 tiles, diagonal Haar details),
# vectorised over a batch of same-sized crops whose sides are multiples of 8 (the tiles cover them exactly). It runs
# in float64 on the float32 pixels, as the TypeScript does (Float64Array arithmetic on a Float32Array image).
CHI2_1_MEDIAN = 0.454936
MAD_TO_SIGMA = 0.6745
CHI2_1_TRIMMED_MEAN = 0.7209 / 0.95
MIN_TILES = 16
MIN_BLOCK_MEAN = 0.02
WEAK_TEXTURE_KEEP = {'gaussian': 0.3, 'poisson': 0.1, 'gamma': 0.1}
GAMMA_SHAPE_NOISE_FREE = 1e6  # estimate.ts: the k of an image with no noise left to see
NOISE_CONSISTENT_TEXTURE = 1.0
NOISE_CONSISTENT_ROUNDS = 10
TEXTURE_CORRECTION_BAND = 4.0
MAX_TEXTURE_SLOPE = 0.5


def _eight_bit(y):
    """isEightBit(): every 7th value of each crop (row-major) is a multiple of 1/255 (within 1e-3 of a step)."""
    sample = y.reshape(y.shape[0], -1)[:, ::7] * 255
    lattice = ((sample - torch.round(sample)).abs() <= 1e-3).all(1)
    return lattice if sample.shape[1] > 0 else torch.zeros_like(lattice)



def _block_variance_scale(m, family):
    """What a 2x2 block's noise variance is proportional to at block mean m: 1 (Gaussian), m (Poisson), m^2 (Gamma);
    0 where a Poisson or Gamma block is too dark to read (m <= MIN_BLOCK_MEAN)."""
    if family == 'gaussian':
        return torch.ones_like(m)
    if family == 'poisson':
        return torch.where(m > MIN_BLOCK_MEAN, m, torch.zeros_like(m))
    return torch.where(m > MIN_BLOCK_MEAN, m * m, torch.zeros_like(m))

def texture_tiles(y, family, rounding=None):
    """textureTiles(): the 8x8 tiles of each crop, per crop: ratios d^2 / scale(m) of their blocks [n, T*16], which
    blocks count [n, T*16] (scale(m) > 0), each tile's texture (mean of (h^2 + v^2) / 2 / scale(m)) [n, T], which
    tiles are usable [n, T] and each tile's rank by texture among them [n, T] (a stable sort, as Array.sort is).
    A tile with a saturated pixel (exactly 0 or 1) is not usable unless every tile of its crop has one (then they
    all are). `rounding` [n] (8-bit rounding's variance, or None) is subtracted from h^2, v^2 and d^2 before dividing
    by scale(m). y: [n, h, w] float64, h, w % 8 == 0."""
    n, h, w = y.shape
    a, b, c, e = y[:, 0::2, 0::2], y[:, 0::2, 1::2], y[:, 1::2, 0::2], y[:, 1::2, 1::2]

    def tiles(t):  # [n, h/2, w/2] blocks -> [n, tiles, 16] (tiles in row-major order, blocks row-major inside)
        return t.reshape(n, h // 8, 4, w // 8, 4).permute(0, 1, 3, 2, 4).reshape(n, (h // 8) * (w // 8), 16)

    a, b, c, e = tiles(a), tiles(b), tiles(c), tiles(e)
    saturated = ((a == 0) | (b == 0) | (c == 0) | (e == 0) | (a == 1) | (b == 1) | (c == 1) | (e == 1)).any(2)
    m = (a + b + c + e) / 4
    scale = _block_variance_scale(m, family)
    valid = scale > 0
    safe = torch.where(valid, scale, torch.ones_like(scale))
    hh, vv, dd = (a + b - c - e) / 2, (a - b + c - e) / 2, (a - b - c + e) / 2
    r = torch.zeros_like(m) if rounding is None else rounding[:, None, None].expand_as(m)
    count = valid.sum(2)
    energy = ((hh * hh + vv * vv) / 2 - r) / safe
    texture = torch.where(valid, energy, torch.zeros_like(m)).sum(2) / count.clamp(min=1)
    clean = ~saturated & (count > 0)
    # Every tile holds a clipped pixel (strong noise on a bright or dark image): a biased estimate beats none (NaN).
    usable = torch.where(clean.any(1, keepdim=True), clean, count > 0)
    order = torch.sort(torch.where(usable, texture, torch.full_like(texture, math.inf)), dim=1, stable=True)[1]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=y.device).expand_as(order))
    return ((dd * dd - r) / safe).reshape(n, -1), valid.reshape(n, -1), texture, usable, rank


def _kept_blocks(valid, usable, rank, count):
    """ratiosOf(): the mask of the blocks of each crop's `count` [n] least textured usable tiles."""
    kept = usable & (rank < count[:, None])
    return (kept[:, :, None] & valid.reshape(*kept.shape, 16)).reshape(valid.shape)


def _kept_count(usable, keep):
    """keptCount(): a fixed fraction `keep` of each crop's usable tiles (at least MIN_TILES, at most all)."""
    tiles_ok = usable.sum(1).double()
    return torch.minimum(tiles_ok, torch.ceil(keep * tiles_ok).clamp(min=MIN_TILES))


def weak_texture_ratios(y, family):
    """weakTextureRatios(): the diagonal-detail ratios d^2 / scale(m) of the blocks of the `keep` fraction of 8x8 tiles
    with the least h/v energy, per crop: (ratios [n, K], mask [n, K] of the ratios kept)."""
    ratios, valid, _, usable, rank = texture_tiles(y, family)
    return ratios, _kept_blocks(valid, usable, rank, _kept_count(usable, WEAK_TEXTURE_KEEP[family]))


def _consistent_count(texture, usable, level, factor):
    """consistentCount(): how many usable tiles have a texture of at most `factor` times each crop's `level` [n] (at
    least MIN_TILES, at most all): the TypeScript's while loop over the tiles sorted by texture."""
    tiles_ok = usable.sum(1).double()
    count = (usable & (texture <= factor * level[:, None])).sum(1).double()
    return torch.minimum(tiles_ok, count.clamp(min=MIN_TILES))


def _noise_consistent_level(ratios, valid, texture, usable, rank, statistic):
    """noiseConsistentLevel(): start from the statistic of the MIN_TILES least textured tiles; then keep every tile
    whose texture is at most NOISE_CONSISTENT_TEXTURE times the level (at least MIN_TILES) and re-estimate, for
    NOISE_CONSISTENT_ROUNDS rounds (to the fixed point; a crop whose level is not finite stops)."""
    tiles_ok = usable.sum(1).double()
    level = statistic(ratios, _kept_blocks(valid, usable, rank, tiles_ok.clamp(max=MIN_TILES)))
    active = torch.isfinite(level)
    for _ in range(NOISE_CONSISTENT_ROUNDS):
        count = _consistent_count(texture, usable, level, NOISE_CONSISTENT_TEXTURE)
        nxt = statistic(ratios, _kept_blocks(valid, usable, rank, count))
        level = torch.where(active, nxt, level)
        active = active & torch.isfinite(level)
    return level


def coarse_details(y, family, rounding):
    """coarseDetail() of each 8x8 tile [n, T]: the mean of the next Haar level's squared details (h, v and d of the
    four 2x2s of the tile's 4x4 block means) over scale(M) of their coarse block, rounding / 4 subtracted from each;
    NaN where no coarse block has a positive scale. y: [n, h, w] float64, h, w % 8 == 0; rounding [n]."""
    n, h, w = y.shape
    m = (y[:, 0::2, 0::2] + y[:, 0::2, 1::2] + y[:, 1::2, 0::2] + y[:, 1::2, 1::2]) / 4
    m = m.reshape(n, h // 8, 4, w // 8, 4).permute(0, 1, 3, 2, 4).reshape(n, (h // 8) * (w // 8), 4, 4)
    a, b, c, e = m[..., 0::2, 0::2], m[..., 0::2, 1::2], m[..., 1::2, 0::2], m[..., 1::2, 1::2]
    mean = (a + b + c + e) / 4
    scale = _block_variance_scale(mean, family)
    ok = scale > 0
    hh, vv, dd = (a + b - c - e) / 2, (a - b + c - e) / 2, (a - b - c + e) / 2
    safe = torch.where(ok, scale, torch.ones_like(scale))
    energy = (hh * hh + vv * vv + dd * dd - 3 * rounding[:, None, None, None] / 4) / safe
    total = torch.where(ok, energy, torch.zeros_like(energy)).sum((2, 3))
    count = 3 * ok.sum((2, 3))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))


def _texture_corrected_level(ratios, valid, texture, usable, rank, coarse, level):
    """textureCorrectedLevel(): over the tiles with a coarse detail among the first consistentCount(level, band)
    ones, the least squares slope b of the tiles' mean d ratio on their coarse detail (clamped to [0,
    MAX_TEXTURE_SLOPE]); over those among the first consistentCount(level, NOISE_CONSISTENT_TEXTURE),
    level = (mean D - b mean C) / (1 - b / 4). A
    crop keeps `level` where it is not positive, where the fit has fewer than 2 tiles or no kept one, or where the
    corrected level is not positive."""
    n, tiles = texture.shape
    blocks = valid.reshape(n, tiles, 16)
    per_block = ratios.reshape(n, tiles, 16)
    d_tile = torch.where(blocks, per_block, torch.zeros_like(per_block)).sum(2) / blocks.sum(2).clamp(min=1)
    has = usable & ~torch.isnan(coarse)
    c_tile = torch.where(has, coarse, torch.zeros_like(coarse))

    def chosen(factor):
        return has & (rank < _consistent_count(texture, usable, level, factor)[:, None])

    def mean_over(mask, values):
        return torch.where(mask, values, torch.zeros_like(values)).sum(1) / mask.sum(1).clamp(min=1)

    band, kept = chosen(TEXTURE_CORRECTION_BAND), chosen(NOISE_CONSISTENT_TEXTURE)
    dc = c_tile - mean_over(band, c_tile)[:, None]
    dd = d_tile - mean_over(band, d_tile)[:, None]
    cov = torch.where(band, dc * dd, torch.zeros_like(dc)).sum(1)
    var_c = torch.where(band, dc * dc, torch.zeros_like(dc)).sum(1)
    fitted = cov / torch.where(var_c > 0, var_c, torch.ones_like(var_c))
    slope = torch.where(var_c > 0, fitted.clamp(0, MAX_TEXTURE_SLOPE), torch.zeros_like(var_c))
    corrected = (mean_over(kept, d_tile) - slope * mean_over(kept, c_tile)) / (1 - slope / 4)
    ok = (level > 0) & (band.sum(1) >= 2) & (kept.sum(1) > 0) & (corrected > 0)
    return torch.where(ok, corrected, level)


def _sorted_kept(values, mask):
    """Each row's kept values sorted ascending (the others moved to the end as +inf), and their count."""
    return torch.sort(torch.where(mask, values, torch.full_like(values, math.inf)), 1)[0], mask.sum(1)


def _trimmed_chi2_mean(ratios, mask):
    """trimmedChi2Mean(): the mean of the lower 95 % of each row's kept ratios over E[X | X < q95] / E[X]; NaN if none."""
    values, count = _sorted_kept(ratios, mask)
    n = torch.floor(0.95 * count.double()).clamp(min=1)
    first = torch.arange(values.shape[1], device=values.device)[None] < n[:, None]
    total = torch.where(first, values, torch.zeros_like(values)).sum(1)
    return torch.where(count > 0, total / n / CHI2_1_TRIMMED_MEAN, torch.full_like(total, math.nan))


def _lattice_median_abs(squares, mask, step):
    """latticeMedianAbs(): the median of |d| interpolated within its step of the 8-bit lattice, per row."""
    values, count = _sorted_kept(torch.sqrt(squares.clamp(min=0)), mask)
    kept = torch.arange(values.shape[1], device=values.device)[None] < count[:, None]  # sorted: the first `count`
    m = values.gather(1, (count // 2)[:, None])[:, 0]
    below = (kept & (values < m[:, None] - step / 4)).sum(1)
    within = (kept & (values >= m[:, None] - step / 4) & (values <= m[:, None] + step / 4)).sum(1)
    small = m < step / 4
    lower = torch.where(small, torch.zeros_like(m), m - step / 2)
    width = torch.where(small, torch.full_like(m, step / 2), torch.full_like(m, step))
    return lower + width * (count.double() / 2 - below) / within


def _median(values, mask):
    v, count = _sorted_kept(values, mask)
    hi = v.gather(1, (count // 2)[:, None])[:, 0]
    lo = v.gather(1, ((count - 1).clamp(min=0) // 2)[:, None])[:, 0]
    return torch.where(count > 0, torch.where(count % 2 == 1, hi, 0.5 * (lo + hi)), torch.full_like(hi, math.nan))


def estimate_levels(family, y):
    """estimateGaussianSigma / estimatePoissonZeta / estimateGammaShape of src/denoise/estimate.ts on each crop of y
    [n, h, w] (h, w multiples of 8), in float64. Gamma: 1 / the relative variance of the noise-consistent tiles, with
    8-bit rounding's variance subtracted (on 8-bit crops) and the texture the next Haar level sees taken out."""
    y = y.double()
    if family == 'gamma':
        rounding = _eight_bit(y).double() / (12 * 255 * 255)  # roundingVariance(): (1/255)^2 / 12, or 0
        tiles = texture_tiles(y, family, rounding)
        level = _noise_consistent_level(*tiles, _trimmed_chi2_mean)
        variance = _texture_corrected_level(*tiles, coarse_details(y, family, rounding), level)
        # GAMMA_SHAPE_NOISE_FREE: no noise left once the rounding is subtracted (NaN stays NaN).
        return torch.where(variance > 1 / GAMMA_SHAPE_NOISE_FREE, 1 / variance,
                           torch.where(torch.isnan(variance), variance, torch.full_like(variance, GAMMA_SHAPE_NOISE_FREE)))
    ratios, mask = weak_texture_ratios(y, family)
    if family == 'gaussian':
        lattice = _lattice_median_abs(ratios, mask, 0.5 / 255) / MAD_TO_SIGMA
        plain = torch.sqrt(_median(ratios, mask) / CHI2_1_MEDIAN)
        return torch.where(_eight_bit(y) & (mask.sum(1) > 0), lattice, plain)
    return _trimmed_chi2_mean(ratios, mask)


def clamp_level(family, level):
    """clampLevel(): a level estimate clamped into the family's training range (NaN: the range's low end)."""
    lo, hi = FAMILY[family]['level']
    return torch.where(torch.isnan(level), torch.full_like(level, lo), level.clamp(lo, hi))


def estimate_patch_levels(family, noisy):
    """estimatePatchLevel() of noise2score.ts on each noisy crop [n, h, w]: Gaussian sigma / Gamma k, clamped into
    the training range (a flat or saturated crop would read 0 or infinity); 1 for Poisson (its level is per image)."""
    if family == 'poisson':
        return torch.ones(noisy.shape[0], device=noisy.device)
    return clamp_level(family, estimate_levels(family, noisy)).float()


def estimate_image_zetas(images, sizes=None):
    """Poisson zeta of each noisy training image (estimatePoissonZeta on the whole image, the tiles covering its
    largest multiple-of-8 part, as in the TypeScript), clamped into the training range."""
    zetas = []
    for i, image in enumerate(images):
        h, w = (int(v) // 8 * 8 for v in (sizes[i] if sizes is not None else image.shape))
        zetas.append(clamp_level('poisson', estimate_levels('poisson', image[None, :h, :w])).float())
    return torch.cat(zetas)


# ENSEMBLE_ORDER of src/denoise/noise2score.ts: bit sets (1 transpose, 2 flip rows, 4 flip columns), so that the
# first 2 and 4 views already mix transposed and flipped ones.
ENSEMBLE_ORDER = (0, 7, 3, 4, 1, 6, 2, 5)


def symmetries(x, count=8):
    """The first `count` symmetries of the square (ENSEMBLE_ORDER) applied to NCHW square crops, stacked on the
    batch: [count * n, c, h, w]."""
    views = []
    for k in ENSEMBLE_ORDER[:count]:
        v = x.transpose(2, 3) if k & 1 else x
        v = v.flip(2) if k & 2 else v
        views.append(v.flip(3) if k & 4 else v)
    return torch.cat(views)


def unsymmetries(stacked, n):
    """The inverse of symmetries(): each view mapped back, then averaged over the views."""
    total, count = 0, stacked.shape[0] // n
    for i, k in enumerate(ENSEMBLE_ORDER[:count]):
        v = stacked[i * n:(i + 1) * n]
        v = v.flip(3) if k & 4 else v
        v = v.flip(2) if k & 2 else v
        total = total + (v.transpose(2, 3) if k & 1 else v)
    return total / count


def load_teacher(directory, device):
    """A committed tf.js score network (its manifest's architecture and weights) as a frozen ScoreNet."""
    manifest = json.load(open(os.path.join(directory, 'manifest.json')))
    teacher = ScoreNet.from_architecture(manifest['architecture']).to(device)
    teacher.load_tfjs(read_layers_model(directory))
    teacher.eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    return teacher


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--noise', choices=sorted(FAMILY), required=True)
    p.add_argument('--patch', type=int, default=64)
    p.add_argument('--lr', type=float, default=4e-4)
    p.add_argument('--init-from', help='a tf.js layers model folder (models/noise2score-<family>/<version>)')
    p.add_argument('--architecture', help="the network as JSON, as in src/denoise/network.ts (kind 'unet'); "
                   'default: the default architecture with the family\'s output scale')
    p.add_argument('--teacher', help='distil from this tf.js score network (Gaussian only): the loss is '
                   '|| sigma (R(y) - T_ens(y)) ||^2 on noisy crops y, T_ens the teacher averaged over symmetries')
    p.add_argument('--teacher-ensemble', type=int, default=8, choices=(1, 2, 4, 8))
    p.add_argument('--noisy', action='store_true',
                   help='the --images are noisy (the user\'s own): train on them as they are, the level of each crop '
                   'estimated (Poisson: of each image), instead of synthesising noise on clean images')
    add_run_arguments(p)
    a = p.parse_args(argv)
    if a.patch % 8 or a.batch % 2:
        sys.exit('--patch must be a multiple of 8 and --batch even')
    if a.noisy and a.teacher:
        sys.exit('--teacher distils on synthesised noise: not with --noisy')
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    torch.backends.cudnn.benchmark = True
    spec = FAMILY[a.noise]
    os.makedirs(a.out, exist_ok=True)
    raw, meta = read_images(a.images)
    images = unit_images(raw, meta, device)
    sizes = image_sizes(meta, device, a.patch)
    zetas = estimate_image_zetas(images, sizes) if a.noisy and a.noise == 'poisson' else None
    architecture = {'kind': 'unet', 'widths': [32, 64, 128], 'outputScale': spec['out_scale'],
                    **(json.loads(a.architecture) if a.architecture else {})}
    net = ScoreNet.from_architecture(architecture).to(device)
    teacher = load_teacher(a.teacher, device) if a.teacher else None
    if teacher is not None and a.noise != 'gaussian':
        sys.exit('--teacher: distillation is implemented for gaussian noise only')
    if a.init_from:
        net.load_tfjs(read_layers_model(a.init_from))
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, eps=1e-7)  # tf.js Adam's epsilon
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    ckpt = os.path.join(a.out, 'checkpoint.pt')
    state = load_checkpoint(ckpt, device, net, opt, gen) if a.resume and os.path.exists(ckpt) else None

    def save():
        save_checkpoint(ckpt, {'net': net.state_dict(), 'opt': opt.state_dict(), 'gen': gen.get_state(),
                               **clock.state()})

    clock = TrainingClock(a, 200, save, state)
    warmup = 0.02
    c0, c1 = spec['c']
    while clock.progress < 1:
        c = c0 * (c1 / c0) ** clock.progress
        lr = learning_rate(a.lr, clock.progress, warmup)
        for g in opt.param_groups:
            g['lr'] = lr
        if teacher is None and a.noisy:
            inputs, u, ls = make_noisy_batch(a.noise, images, zetas, a.batch, a.patch, c, gen, device, sizes)
            loss = torch.mean(torch.square(u + ls * net(inputs)))
        elif teacher is None:
            inputs, u, ls = make_batch(a.noise, images, a.batch, a.patch, c, gen, device, sizes)
            loss = torch.mean(torch.square(u + ls * net(inputs)))
        else:
            _, noisy, level = noisy_crops(a.noise, images, a.batch, a.patch, gen, device, sizes)
            noisy = noisy[:, None]
            # The teacher in bfloat16 on a GPU (twice the speed; ~0.4% relative error on a target).
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == 'cuda'):
                views = symmetries(noisy, a.teacher_ensemble)
                target = unsymmetries(teacher(views).float(), a.batch)
            loss = torch.mean(torch.square(level[:, None, None, None] * (net(noisy) - target)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clock.record(loss, c=c, lr=lr)

    # The probe: a fixed noisy 64x64 crop of the first training image and the network's output on it, so the
    # importer can check that tf.js computes the same function.
    rng = np.random.default_rng(12345)
    clean = np.zeros((64, 64), np.float32)  # (zero-padded when the first image is smaller)
    clean[:min(64, raw.shape[1]), :min(64, raw.shape[2])] = raw[0, :64, :64].astype(np.float32) / pack_max(meta)
    probe_in = (clean + {'gaussian': 0.1, 'poisson': 0.05, 'gamma': 0.05}[a.noise]
                * rng.standard_normal((64, 64)).astype(np.float32) * (1 if a.noise == 'gaussian' else clean))
    probe_in = probe_in.astype(np.float32)
    net.eval()
    with full_precision():
        probe_out = net(torch.from_numpy(probe_in)[None, None].to(device)).cpu().numpy()
    write_tensors(a.out, net.tfjs_weights() + [
        ('probe/input', probe_in.reshape(1, 64, 64, 1)),
        ('probe/output', probe_out.reshape(1, 64, 64, 1)),
    ])
    save()
    summary = {
        'noise': a.noise, 'noisyImages': a.noisy, 'steps': clock.step, 'batch': a.batch, 'patch': a.patch, 'lr': a.lr, 'seed': a.seed,
        'initFrom': a.init_from, 'architecture': architecture, 'teacher': a.teacher,
        'teacherEnsemble': a.teacher_ensemble if a.teacher else None, 'maxSeconds': a.max_seconds,
        'seconds': round(clock.elapsed(), 1),
        'finalLoss': clock.log[-1]['loss'] if clock.log else None, 'device': torch.cuda.get_device_name(device)
        if device.type == 'cuda' else 'cpu', 'torch': torch.__version__, 'images': meta,
        'command': 'python3 tools/train/torch/noise2score.py ' + ' '.join(argv), 'log': clock.log,
    }
    with open(os.path.join(a.out, 'train.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f"done: {clock.step} steps in {summary['seconds']} s", flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
