#!/usr/bin/env python3
"""
GPU trainer for MID (Mask, Inpaint and Denoise; tools/train/mid.ts): a PyTorch port of the same rounds, network and
objective, for machines with a CUDA GPU. A training tool only: the service, its tests and CI never run Python.

    round r = 0..R-1:
      1. train D on synthetic pairs (x, x + n), n ~ sampler_r, the input masked (a random --mask-ratio of the pixels
         dropped and filled from the mean of their kept neighbours, 3x3 then 5x5 then 9x9; channel 3 the keep mask);
         loss: mean squared error to x over all pixels; Adam (tf.js epsilon), linear warm-up over 3% of the round's
         steps then cosine to 2% of the peak (--lr for round 0, --fine-tune-lr after, a fresh Adam per round);
      2. the noise dataset: residuals n = y - D(y) of the real noisy images, D in blind-spot form (pixels split
         into --residual-masks random groups, each dropped once, each pixel predicted by the pass that dropped it);
      3. refit the sampler on it (residual bank of src/mid/sampler.ts: 16-bin per-channel std curve of D(y), z =
         n / curve, sampled as random shifted/flipped patches rescaled by the curve at the clean intensity).
    sampler_0 is Gaussian with the per-channel sigma the TypeScript side measured (estimateSigmaCoarse, median).

Data: `--images` is the folder written by `npx tsx tools/train/torch/pack-mid.ts` (the noisy, clean and validation
images exactly as mid-data.ts reads them, uint8, with round 0's sigma and the data's description), so this script
needs no image library and sees the pixels the wasm trainer sees. Inference for the noise dataset and validation runs
on the whole (reflect-padded) image rather than the TypeScript windows: the same function up to the window seams.

Output (--out): checkpoint.pt (every --checkpoint-seconds, atomic; --resume continues it, the batches of a step are
seeded by (seed, round, step) so a resumed run replays the same ones), and after every round the weights in tf.js
layout under tf.js names with a probe (tensors.bin/json; round 0's also in round-0/) and train.json (the per-round
records of mid.ts's manifest).
`npx tsx tools/train/torch/import-mid.ts --from <out> --out models/<name>/<version>` rebuilds the tf.js network,
checks the probe (1e-4) and writes the model folder with mid.ts's manifest. `npm run train -- mid --device cuda`
does the packing, this script and the import in one step.

    python3 tools/train/torch/mid.py --images <pack> --out <dir> --round-steps 500,300,300 --batch 12 --patch 48
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # layers.py and noise2score.py, next to this file
from layers import ConvNet, depth_to_space, space_to_depth, unet_convolutions  # noqa: E402
from noise2score import full_precision, save_checkpoint, write_tensors  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# Data


def read_pack(directory, device):
    """pack-mid.ts: images.json ({noisy, clean, validation: [{name, width, height, offset}], ...}) + images.u8
    (interleaved RGB rows); images as [3, h, w] float tensors on [0, 1]."""
    meta = json.load(open(os.path.join(directory, 'images.json')))
    raw = np.fromfile(os.path.join(directory, 'images.u8'), dtype=np.uint8)

    def image(spec):
        h, w = spec['height'], spec['width']
        a = raw[spec['offset']:spec['offset'] + h * w * 3].reshape(h, w, 3)
        return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1).contiguous().to(device)

    noisy = [image(s) for s in meta['noisy']]
    clean = [image(s) for s in meta['clean']]
    validation = [(v['name'], image(v['noisy']), image(v['mean'])) for v in meta['validation']]
    return meta, noisy, clean, validation


# ----------------------------------------------------------------------------------------------------------------
# Masks and fill-in (src/mid/mask.ts)


def box_sum(x, radius):
    """Sum over the (2r+1)^2 window, the window clipped at the borders (zero padding)."""
    k = 2 * radius + 1
    return F.avg_pool2d(x, k, stride=1, padding=radius, count_include_pad=True) * (k * k)


def fill_masked(y, keep):
    """fillMasked(): y [n, 3, h, w], keep [n, 1, h, w] (1 kept, 0 dropped); a dropped pixel gets the mean of the kept
    pixels in its 3x3 window, else 5x5, else 9x9, else 0.5; kept pixels unchanged."""
    fill = torch.full_like(y, 0.5)
    for radius in (4, 2, 1):  # the smallest window with a kept pixel wins
        count = box_sum(keep, radius)
        mean = box_sum(y * keep, radius) / count.clamp(min=1)
        fill = torch.where(count > 0, mean, fill)
    return torch.where(keep > 0, y, fill)


def network_input(y, keep):
    """The network's 4 channels: filled colour + keep mask."""
    return torch.cat([fill_masked(y, keep), keep], 1)


def reflect_index(n, size):
    """reflectPad() of src/denoise/noise2score.ts along one axis: indices of a padded axis of `size`."""
    if n == 1:
        return torch.zeros(size, dtype=torch.long)
    period = 2 * (n - 1)
    j = torch.arange(size) % period
    return torch.where(j >= n, period - j, j)


def pad_to_multiple(image, multiple=8):
    """[3, h, w] -> [3, ph, pw], reflect-padded at the bottom/right to multiples of `multiple`."""
    _, h, w = image.shape
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    rows = reflect_index(h, ph).to(image.device)
    cols = reflect_index(w, pw).to(image.device)
    return image[:, rows][:, :, cols]


# ----------------------------------------------------------------------------------------------------------------
# The network (src/mid/network.ts: buildMidNetwork)


class MidNet(ConvNet):
    """Space-to-depth by 2 of the 4-channel input, the pixel-shuffle U-Net of src/nn/unet.ts (convs [2, 2, 3, 2, 2],
    concatenated skips), a linear 12-channel head (zero kernel: the untrained net is its fill-in), depth-to-space
    back to 3 channels, plus the filled colour channels (global skip). Convolutions named conv1.. as tf.js does."""

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        self.specs, self.stages = unet_convolutions(16, widths, (2, 2, 3, 2, 2), 2, 12, 'head')
        self.make_weights(self.he_normal)

    @staticmethod
    def he_normal(name, cin, cout, k, relu):
        w = torch.zeros(cout, cin, k, k)
        if relu:  # tf.js heNormal: truncated normal, std sqrt(2 / fan in), cut at 2 std
            std = math.sqrt(2.0 / (k * k * cin))
            torch.nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
        return w

    def forward(self, x):  # x: [n, 4, h, w], h and w multiples of 8
        e1 = self.run('e1', space_to_depth(x, 2))
        e2 = self.run('e2', e1)
        bottom = self.run('bottom', e2)
        d2 = self.run('d2', torch.cat([depth_to_space(self.run('up2', bottom), 2), e2], 1))
        d1 = self.run('d1', torch.cat([depth_to_space(self.run('up1', d2), 2), e1], 1))
        return x[:, :3] + depth_to_space(self.run('head', d1), 2)


# ----------------------------------------------------------------------------------------------------------------
# Noise samplers (src/mid/sampler.ts)


def interpolate(table, value):
    """sigma(value): linear between bin centres, constant beyond the first and last; table [3, bins], value
    [n, 3, h, w]."""
    bins = table.shape[1]
    x = (value * bins - 0.5).clamp(0, bins - 1)
    i = x.floor().clamp(max=bins - 2).long()
    t = x - i
    c = torch.arange(3, device=value.device).view(1, 3, 1, 1).expand_as(i)
    return (1 - t) * table[c, i] + t * table[c, i + 1]


class GaussianSampler:
    kind = 'gaussian'

    def __init__(self, sigmas, device):
        self.sigmas = torch.tensor(sigmas, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def sample(self, clean, rng, gen):
        return self.sigmas * torch.randn(clean.shape, generator=gen, device=clean.device)


def binned_std(images, bins):
    """binnedStd(): per channel and bin of the signal, the RMS of the noise and the pixel count (float64)."""
    sums = np.zeros((3, bins))
    counts = np.zeros((3, bins))
    for noise, signal in images:
        b = (signal * bins).floor().clamp(0, bins - 1).long()
        for c in range(3):
            sums[c] += torch.bincount(b[c].reshape(-1), (noise[c] ** 2).reshape(-1).double(), bins).cpu().numpy()
            counts[c] += torch.bincount(b[c].reshape(-1), minlength=bins).cpu().numpy()
    with np.errstate(invalid='ignore', divide='ignore'):
        std = np.where(counts > 0, np.sqrt(sums / np.maximum(counts, 1)), np.nan)
    return std, counts


def fill_curve(std, counts, min_count):
    """fillCurve(): unreliable bins (NaN or under min_count pixels) from the nearest reliable ones, linear between."""
    known = [b for b in range(len(std)) if np.isfinite(std[b]) and counts[b] >= min_count]
    if not known:
        finite = std[np.isfinite(std)]
        return np.full(len(std), finite.mean() if len(finite) else 0.0)
    out = std.copy()
    for b in range(len(std)):
        if b in known:
            continue
        left = [k for k in known if k < b]
        right = [k for k in known if k > b]
        if not left:
            out[b] = std[right[0]]
        elif not right:
            out[b] = std[left[-1]]
        else:
            t = (b - left[-1]) / (right[0] - left[-1])
            out[b] = (1 - t) * std[left[-1]] + t * std[right[0]]
    return out


class ResidualBank:
    """fitResidualBank(images, 3): 16 bins, bins under 500 pixels filled, sigma floored at 1e-4."""
    kind = 'residual-bank'

    def __init__(self, images, bins=16, min_count=500, min_std=1e-4):
        std, counts = binned_std(images, bins)
        table = np.stack([np.maximum(fill_curve(std[c], counts[c], min_count), min_std) for c in range(3)])
        self.table = torch.tensor(table, dtype=torch.float32, device=images[0][0].device)
        self.bank = [noise / interpolate(self.table, signal[None])[0] for noise, signal in images]

    def sample(self, clean, rng, gen):
        n, _, size, _ = clean.shape
        z = []
        for _ in range(n):
            source = self.bank[rng.integers(len(self.bank))]
            _, h, w = source.shape
            if h < size or w < size:
                sys.exit(f'a noisy image of {w}x{h} is smaller than the {size}x{size} patch: lower --patch')
            top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
            z.append(source[:, top:top + size, left:left + size])
        return flip(torch.stack(z), rng) * interpolate(self.table, clean)


def flip(x, rng):
    """Random flips of rows and columns per sample (no transposes: they would swap the noise's correlations)."""
    rows = torch.from_numpy(rng.random(x.shape[0]) < 0.5).to(x.device).view(-1, 1, 1, 1)
    cols = torch.from_numpy(rng.random(x.shape[0]) < 0.5).to(x.device).view(-1, 1, 1, 1)
    x = torch.where(rows, x.flip(2), x)
    return torch.where(cols, x.flip(3), x)


def colour_patches(images, size, count, rng):
    """sampleColourPatch() x count: random crops of random images, randomly flipped; [count, 3, size, size]."""
    crops = []
    for _ in range(count):
        image = images[rng.integers(len(images))]
        _, h, w = image.shape
        top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
        crops.append(image[:, top:top + size, left:left + size])
    return flip(torch.stack(crops), rng)


# ----------------------------------------------------------------------------------------------------------------
# Statistics of a noise field (noiseStatistics of src/mid/sampler.ts), for the manifest's records


def noise_statistics(images, bins=8):
    std, counts = binned_std(images, bins)
    per_bin = []
    for b in range(bins):
        n = counts[:, b].sum()
        s = sum(std[c, b] ** 2 * counts[c, b] for c in range(3) if counts[c, b] > 0)
        per_bin.append(round(255 * math.sqrt(s / n), 3) if n > 0 else None)
    pixels = sum(noise.shape[1] * noise.shape[2] for noise, _ in images)
    mean = sum(noise.double().sum((1, 2)) for noise, _ in images) / pixels
    sq = sum((noise.double() ** 2).sum((1, 2)) for noise, _ in images)
    variance = sq / pixels - mean ** 2
    centred = [(noise.double() - mean[:, None, None]) / variance.sqrt()[:, None, None] for noise, _ in images]

    def lag(dr, dc):
        total = sum((z[:, :z.shape[1] - dr, :z.shape[2] - dc] * z[:, dr:, dc:]).sum() for z in centred)
        count = sum(3 * (z.shape[1] - dr) * (z.shape[2] - dc) for z in centred)
        return round(float(total / count), 4)

    def cross(a, b):
        return round(float(sum((z[a] * z[b]).sum() for z in centred) / pixels), 4)

    return {
        'stdPerBin255': per_bin,
        'stdPerChannel255': [round(255 * math.sqrt(v), 3) for v in (sq / pixels).tolist()],
        'neighbourCorrelation': {'horizontal': lag(0, 1), 'vertical': lag(1, 0)},
        'crossChannelCorrelation': [cross(0, 1), cross(1, 2), cross(0, 2)],
    }


# ----------------------------------------------------------------------------------------------------------------
# Inference (src/mid/denoise.ts: midRgb) on whole images


@torch.no_grad()
def mid_rgb(net, image, gen, masks=1, drop=0.3, partition=None):
    """D averaged over `masks` random masks, or in blind-spot form with `partition` groups; [3, h, w], not clipped."""
    _, h, w = image.shape
    padded = pad_to_multiple(image)[None]
    shape = (1, 1) + padded.shape[2:]
    if partition:
        groups = torch.randint(partition, shape, generator=gen, device=image.device)
        out = torch.zeros_like(padded)
        for k in range(partition):
            keep = (groups != k).float()
            out = torch.where(groups == k, net(network_input(padded, keep)), out)
    else:
        out = 0
        for _ in range(masks):
            keep = (torch.rand(shape, generator=gen, device=image.device) >= drop).float()
            out = out + net(network_input(padded, keep))
        out = out / masks
    return out[0, :, :h, :w]


def seeded(device, *keys):
    """A generator (and a numpy one) seeded by the keys: the same keys always give the same stream."""
    seed = int(np.random.SeedSequence([k & 0xFFFFFFFF for k in keys]).generate_state(1)[0])
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen, np.random.default_rng(seed)


def noise_dataset(net, noisy, masks, seed, round_):
    """The residuals n = y - D(y) of the noisy set, D in blind-spot form, with the signal D(y) they sit on."""
    net.eval()
    out = []
    for i, y in enumerate(noisy):
        gen, _ = seeded(y.device, seed, 1000 + round_, i)
        d = mid_rgb(net, y, gen, partition=masks)
        out.append((y - d, d))
    net.train()
    return out


def psnr(x, xhat):
    return float(10 * torch.log10(1 / torch.mean((xhat.clamp(0, 1) - x) ** 2)))


def validate(net, validation, masks, drop, seed):
    net.eval()
    per_image = []
    for i, (name, noisy, mean) in enumerate(validation):
        gen, _ = seeded(noisy.device, seed, 5000 + i)
        per_image.append({'name': name, 'psnr': round(psnr(mean, mid_rgb(net, noisy, gen, masks, drop)), 3)})
    net.train()
    return per_image


def sampler_statistics(sampler, clean, noisy, device):
    """samplerStatistics(): 48 patches of at most 128 px, no larger than any clean image or any noisy one (a
    residual bank samples its noise from the noisy images)."""
    gen, rng = seeded(device, 777)
    size = min(128, *[min(im.shape[1], im.shape[2]) for im in [*clean, *noisy]])
    x = colour_patches(clean, size, 48, rng)
    n = sampler.sample(x, rng, gen)
    return noise_statistics([(n[i], x[i]) for i in range(48)])


# ----------------------------------------------------------------------------------------------------------------
# Training


def learning_rate(peak, step, steps):
    """midLearningRate(): warmupCosine(peak, step, steps, {warmupFraction: 0.03, floor: 0.02})."""
    warmup = max(1, round(0.03 * steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def make_batch(clean, sampler, a, round_, step, device):
    """makeMidBatch(): masked-and-filled noisy patches (4 channels) and their clean targets, seeded by the step."""
    gen, rng = seeded(device, a.seed, round_, step)
    x = colour_patches(clean, a.patch, a.batch, rng)
    y = x + sampler.sample(x, rng, gen)
    keep = (torch.rand((a.batch, 1, a.patch, a.patch), generator=gen, device=device) >= a.mask_ratio).float()
    return network_input(y, keep), x


def make_probe(images, size, seed, device):
    """A fixed masked noisy crop (the network's 4 channels) for the importer's check: [1, 4, size, size]."""
    _, rng = seeded(device, seed, 4242)
    image = pad_to_multiple(images[0], size)[:, :size, :size][None]
    keep = torch.from_numpy((rng.random((1, 1, size, size)) >= 0.3).astype(np.float32)).to(device)
    return network_input(image, keep)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', required=True, help='a folder written by pack-mid.ts')
    p.add_argument('--out', required=True)
    p.add_argument('--round-steps', default='500,300,300')
    p.add_argument('--batch', type=int, default=12)
    p.add_argument('--patch', type=int, default=48)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--fine-tune-lr', type=float, default=3e-4)
    p.add_argument('--mask-ratio', type=float, default=0.3)
    p.add_argument('--residual-masks', type=int, default=3)
    p.add_argument('--validation-masks', type=int, default=2)
    p.add_argument('--widths', default='16,32,64')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--max-seconds', type=float, default=0, help='stop (with a checkpoint) after this long')
    p.add_argument('--checkpoint-seconds', type=float, default=300)
    p.add_argument('--log-every', type=int, default=100)
    p.add_argument('--probe-size', type=int, default=64)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = p.parse_args(argv)
    round_steps = [int(s) for s in a.round_steps.split(',')]
    widths = [int(w) for w in a.widths.split(',')]
    if min(round_steps) < 1 or len(widths) != 3 or min(widths) < 1:
        sys.exit('--round-steps: positive integers; --widths: three positive integers')
    if not 0 <= a.mask_ratio < 1 or a.residual_masks < 2 or a.patch % 8 or a.probe_size % 8:
        sys.exit('--mask-ratio in [0, 1), --residual-masks >= 2, --patch and --probe-size multiples of 8')
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    meta, noisy, clean, validation = read_pack(a.images, device)
    clean = [im for im in clean if im.shape[1] >= a.patch and im.shape[2] >= a.patch]
    if not clean or not noisy:
        sys.exit(f'no noisy image, or no clean image of at least {a.patch}x{a.patch}')
    print(f'data: {len(noisy)} noisy, {len(clean)} clean, {len(validation)} validation images', flush=True)
    net = MidNet(widths).to(device)
    ckpt = os.path.join(a.out, 'checkpoint.pt')
    state = {'round': 0, 'round_step': 0, 'rounds': [], 'losses': [], 'elapsed': 0.0, 'log': [],
             'previous': None, 'opt': None}
    if a.resume and os.path.exists(ckpt):
        state = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(state['net'])
        print(f"resumed at round {state['round']}, step {state['round_step']}", flush=True)
    elif os.path.exists(ckpt):
        sys.exit(f'{ckpt} exists: pass --resume to continue it, or give another --out')
    start = time.time()
    elapsed = lambda: state['elapsed'] + time.time() - start  # noqa: E731
    last_checkpoint = time.time()
    opt = None

    def save():
        save_checkpoint(ckpt, {**state, 'elapsed': elapsed(), 'net': net.state_dict(),
                               'opt': opt.state_dict() if opt is not None and state['round_step'] > 0 else None})

    def write_run(status):
        probe_in = make_probe(noisy, a.probe_size, a.seed, device)
        net.eval()
        with full_precision():
            probe_out = net(probe_in)
        net.train()
        nhwc = lambda t: t.permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
        tensors = net.tfjs_weights() + [('probe/input', nhwc(probe_in)), ('probe/output', nhwc(probe_out))]
        write_tensors(a.out, tensors)
        if len(state['rounds']) == 1:  # round 0's model (the Gaussian sampler's) too, for --round0-out
            write_tensors(os.path.join(a.out, 'round-0'), tensors)
        summary = {
            'steps': sum(r['steps'] for r in state['rounds']), 'roundSteps': round_steps, 'batch': a.batch,
            'patch': a.patch, 'lr': a.lr, 'fineTuneLr': a.fine_tune_lr, 'maskRatio': a.mask_ratio,
            'residualMasks': a.residual_masks, 'validationMasks': a.validation_masks, 'seed': a.seed,
            'architecture': {'kind': 'mid-unet', 'widths': widths}, 'initFrom': None, 'status': status,
            'rounds': state['rounds'], 'seconds': round(elapsed(), 1),
            'finalLoss': state['rounds'][-1]['finalLoss'] if state['rounds'] else None,
            'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
            'torch': torch.__version__, 'images': {'source': meta['description'], 'count': len(noisy)},
            'data': {k: meta[k] for k in ('description', 'split', 'reference', 'validationNoisyPsnr', 'evalCrop')},
            'command': 'python3 tools/train/torch/mid.py ' + ' '.join(argv), 'log': state['log'],
        }
        with open(os.path.join(a.out, 'train.json.partial'), 'w') as f:
            json.dump(summary, f, indent=2)
        os.replace(os.path.join(a.out, 'train.json.partial'), os.path.join(a.out, 'train.json'))

    dataset = None  # the noise dataset of the round before, when this process made it
    done_here = 0  # steps taken by this process (for the ETA: validation and noise datasets not counted)
    for round_ in range(state['round'], len(round_steps)):
        round_start = time.time()
        if round_ == 0:
            sampler = GaussianSampler(meta['sigma0'], device)
        else:
            if dataset is None:  # resumed: rebuild round r-1's noise dataset from its weights (same seeds)
                previous = MidNet(widths).to(device)
                previous.load_state_dict(state['previous'])
                dataset = noise_dataset(previous, noisy, a.residual_masks, a.seed, round_ - 1)
                print(f'round {round_}: sampler refit on the noise dataset of round {round_ - 1} (rebuilt)', flush=True)
            sampler = ResidualBank(dataset)
            dataset = None
        steps = round_steps[round_]
        peak = a.lr if round_ == 0 else a.fine_tune_lr
        opt = torch.optim.Adam(net.parameters(), lr=peak, eps=1e-7)  # tf.js Adam's epsilon
        if state['round_step'] > 0 and state.get('opt'):
            opt.load_state_dict(state['opt'])
        if state['round_step'] == 0:
            state['losses'] = []
        pending = []
        for step in range(state['round_step'], steps):
            lr = learning_rate(peak, step, steps)
            for g in opt.param_groups:
                g['lr'] = lr
            x, target = make_batch(clean, sampler, a, round_, step, device)
            loss = torch.mean(torch.square(net(x) - target))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            pending.append(loss.detach())
            state['round_step'] = step + 1
            if (step + 1) % a.log_every == 0 or step + 1 == steps:
                values = torch.stack(pending).cpu().tolist()
                pending = []
                if not all(math.isfinite(v) for v in values):
                    sys.exit(f'loss is not finite in round {round_} before step {step + 1}: lower --lr')
                state['losses'] = (state['losses'] + values)[-400:]
                mean = sum(values) / len(values)
                done_here += len(values)
                left = steps - step - 1 + sum(round_steps[round_ + 1:])
                entry = {'round': round_, 'step': step + 1, 'loss': mean, 'lr': lr, 'seconds': round(elapsed(), 1),
                         'etaSeconds': round(left * (time.time() - start) / done_here)}
                state['log'].append(entry)
                print(json.dumps(entry), flush=True)
            stop = a.max_seconds > 0 and time.time() - start >= a.max_seconds
            if (time.time() - last_checkpoint > a.checkpoint_seconds or stop) and step + 1 < steps:
                if pending:
                    state['losses'] = (state['losses'] + torch.stack(pending).cpu().tolist())[-400:]
                    pending = []
                save()
                last_checkpoint = time.time()
            if stop and step + 1 < steps:
                print(f'stopped at round {round_}, step {step + 1} of {steps} (--max-seconds); '
                      'rerun with --resume to continue', flush=True)
                return
        # End of the round: validate, measure the noise dataset, refit nothing yet (the next round does).
        per_image = validate(net, validation, a.validation_masks, a.mask_ratio, a.seed)
        dataset = noise_dataset(net, noisy, a.residual_masks, a.seed, round_)
        recent = state['losses'][-100:]
        record = {
            'round': round_, 'steps': steps, 'sampler': sampler.kind,
            **({'samplerSigma255': [round(255 * s, 3) for s in meta['sigma0']]} if round_ == 0 else {}),
            'finalLoss': float(f'{sum(recent) / max(1, len(recent)):.4e}'),
            'validationPsnr': round(sum(v['psnr'] for v in per_image) / len(per_image), 3) if per_image else None,
            'validationPerImage': per_image,
            'noiseDataset': noise_statistics(dataset),
            'samplerStatistics': sampler_statistics(sampler, clean, noisy, device),
            'seconds': round(time.time() - round_start),
        }
        state['rounds'].append(record)
        v = record['validationPsnr']
        noisy_psnr = meta['validationNoisyPsnr']
        print(f'round {round_} done: validation PSNR ' + ('n/a (no references)' if v is None else
              f'{v} dB (noisy {noisy_psnr:.3f} dB)'), flush=True)
        state.update({'round': round_ + 1, 'round_step': 0, 'losses': [],
                      'previous': {k: t.detach().clone() for k, t in net.state_dict().items()}})
        opt = None
        last = round_ + 1 == len(round_steps)
        write_run('final' if last else f'partial (round {round_ + 1} of {len(round_steps)})')
        save()
        last_checkpoint = time.time()
    print(f"done: {sum(round_steps)} steps in {round(elapsed(), 1)} s", flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
