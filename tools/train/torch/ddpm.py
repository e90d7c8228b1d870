#!/usr/bin/env python3
"""
GPU trainer for the DDPM eps-prediction U-Net of the natural-grey prior: a PyTorch port of tools/train/ddpm.ts (the
network of src/diffusion/unet.ts, the DDPM "simple" loss on the linear 1000-step schedule, Adam with linear warm-up
and cosine decay to 10 %, an EMA with the (1 + s) / (10 + s) warm-up, random crops with the 8 symmetries of the
square), for machines with a CUDA GPU. A training tool only: the service, its tests and CI never run Python.
`npx tsx tools/train/torch/import-ddpm.ts` rebuilds the tf.js network from the EMA weights written here, checks it
against the probe written with them, draws samples.png and writes the model folder with its manifest.

Layer names follow buildUnet's counter (conv_5, group_norm_6, dense_10, ...), so weights travel by name in tf.js
layout; an --init-from model whose names or shapes differ is refused.

    python3 tools/train/torch/ddpm.py --images <packed train400> --size 64 --steps 60000 --batch 128 --lr 5e-4 \
        --init-from models/ddpm-natural-grey/20261128 --out <dir> --seed 7 --max-seconds 420
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # layers.py and noise2score.py, next to this file
from layers import depth_to_space, same_pad, space_to_depth  # noqa: E402
from noise2score import (TrainingClock, add_run_arguments, full_precision, image_sizes, load_checkpoint,  # noqa: E402
                         pack_max, random_crops, read_images, read_layers_model, save_checkpoint, unit_images,
                         write_tensors)


class Unet(torch.nn.Module):
    """buildUnet(tf, architecture) of src/diffusion/unet.ts, parameters in tf.js layout under tf.js names."""

    def __init__(self, channels=(32, 64, 64), res_blocks=1, time_embedding=64, groups=8, s2d=2, norm_twice=False):
        super().__init__()
        self.channels, self.res_blocks, self.te, self.groups, self.s2d = list(channels), res_blocks, time_embedding, groups, s2d
        self.norm_twice = norm_twice
        self.params = torch.nn.ParameterDict()
        self.zero_init = set()
        self.counter = 0
        self.program = []  # built once by tracing shapes; forward replays the same naming
        self._build()

    # ---- construction: the same id() sequence as buildUnet ----
    def _id(self, kind):
        self.counter += 1
        return f'{kind}_{self.counter}'

    def _conv(self, cin, cout, k=3, stride=1, zero=False):
        name = self._id('conv')
        w = torch.empty(k, k, cin, cout)
        if zero:
            torch.nn.init.zeros_(w)
        else:
            bound = math.sqrt(6.0 / (k * k * cin + k * k * cout))  # glorotUniform
            torch.nn.init.uniform_(w, -bound, bound)
        self.params[f'{name}/kernel'.replace('/', '__')] = torch.nn.Parameter(w)
        self.params[f'{name}/bias'.replace('/', '__')] = torch.nn.Parameter(torch.zeros(cout))
        return ('conv', name, k, stride)

    def _norm(self, c):
        name = self._id('group_norm')
        g = min(self.groups, c)
        while c % g:
            g -= 1
        self.params[f'{name}/gamma'.replace('/', '__')] = torch.nn.Parameter(torch.ones(c))
        self.params[f'{name}/beta'.replace('/', '__')] = torch.nn.Parameter(torch.zeros(c))
        return ('norm', name, g)

    def _dense(self, cin, cout):
        name = self._id('dense')
        bound = math.sqrt(6.0 / (cin + cout))
        self.params[f'{name}/kernel'.replace('/', '__')] = torch.nn.Parameter(torch.empty(cin, cout).uniform_(-bound, bound))
        self.params[f'{name}/bias'.replace('/', '__')] = torch.nn.Parameter(torch.zeros(cout))
        return ('dense', name)

    def _silu(self):
        self._id('silu')
        return ('silu',)

    def _res_block(self, cin, cout):
        block = {'norm1': self._norm(cin)}
        self._silu()
        block['conv1'] = self._conv(cin, cout)
        self._id('time_bias')
        block['dense'] = self._dense(self.te, cout)
        if self.norm_twice:
            block['norm2'] = self._norm(cout)
        self._silu()
        block['conv2'] = self._conv(cout, cout)
        block['skip'] = self._conv(cin, cout, 1) if cin != cout else None
        self._id('residual')
        return block

    def _build(self):
        te = self.te
        self.emb_dense1 = self._dense(te, te)
        self._silu()
        self.emb_dense2 = self._dense(te, te)
        self._silu()
        ch = self.channels
        self.conv_in = self._conv(self.s2d * self.s2d, ch[0])
        c = ch[0]
        self.down = []
        for level, cl in enumerate(ch):
            blocks = []
            for _ in range(self.res_blocks):
                blocks.append(self._res_block(c, cl))
                c = cl
            down = self._conv(c, cl, 3, 2) if level < len(ch) - 1 else None
            self.down.append((blocks, down))
        self.middle = self._res_block(c, ch[-1])
        c = ch[-1]
        self.up = []
        for level in range(len(ch) - 2, -1, -1):
            reduce = self._conv(c, ch[level], 1)
            self._id('upsample')
            self._id('skip')
            c = ch[level] + ch[level]  # reduced channels + the skip's
            blocks = []
            for _ in range(self.res_blocks):
                blocks.append(self._res_block(c, ch[level]))
                c = ch[level]
            self.up.append((level, reduce, blocks))
        self.norm_out = self._norm(c)
        self._silu()
        self.conv_out = self._conv(c, self.s2d * self.s2d, 3, 1, zero=True)

    # ---- evaluation ----
    def p(self, name):
        return self.params[name.replace('/', '__')]

    def conv(self, op, x):
        _, name, k, stride = op
        w = self.p(f'{name}/kernel').permute(3, 2, 0, 1)
        return F.conv2d(same_pad(x, k, stride), w, self.p(f'{name}/bias'), stride=stride)

    def norm(self, op, x):
        _, name, g = op
        return F.group_norm(x, g, self.p(f'{name}/gamma'), self.p(f'{name}/beta'), eps=1e-5)

    def dense(self, op, x):
        return x @ self.p(f'{op[1]}/kernel') + self.p(f'{op[1]}/bias')

    def block(self, b, x, emb):
        h = self.conv(b['conv1'], F.silu(self.norm(b['norm1'], x)))
        h = h + self.dense(b['dense'], emb)[:, :, None, None]
        if 'norm2' in b:
            h = self.norm(b['norm2'], h)
        h = self.conv(b['conv2'], F.silu(h))
        skip = x if b['skip'] is None else self.conv(b['skip'], x)
        return skip + h

    def forward(self, x, t):  # x [n, 1, h, w] in [-1, 1]; t [n] float timestep index
        half = self.te // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
        angles = t.reshape(-1, 1).float() * freqs[None]
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], 1)
        emb = F.silu(self.dense(self.emb_dense2, F.silu(self.dense(self.emb_dense1, emb))))
        h = self.conv(self.conv_in, space_to_depth(x, self.s2d) if self.s2d > 1 else x)
        skips = []
        for blocks, down in self.down:
            for b in blocks:
                h = self.block(b, h, emb)
            if down is not None:
                skips.append(h)
                h = self.conv(down, h)
        h = self.block(self.middle, h, emb)
        for level, reduce, blocks in self.up:
            h = F.interpolate(self.conv(reduce, h), scale_factor=2, mode='nearest')
            h = torch.cat([h, skips[level]], 1)
            for b in blocks:
                h = self.block(b, h, emb)
        out = self.conv(self.conv_out, F.silu(self.norm(self.norm_out, h)))
        return depth_to_space(out, self.s2d) if self.s2d > 1 else out

    def names(self):
        return [k.replace('__', '/') for k in self.params.keys()]

    def load_tfjs(self, weights):
        mine = {n: tuple(self.p(n).shape) for n in self.names()}
        theirs = {n: tuple(v.shape) for n, v in weights.items()}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))
            raise SystemExit(f'--init-from does not match this architecture: {diff[:6]}')
        with torch.no_grad():
            for n in self.names():
                self.p(n).copy_(torch.from_numpy(np.array(weights[n])))


def schedule(device, timesteps=1000, beta_start=1e-4, beta_end=0.02):
    betas = np.array([beta_start + (beta_end - beta_start) * t / (timesteps - 1) for t in range(timesteps)])
    alpha_bars = np.cumprod(1 - betas)
    return (torch.tensor(np.sqrt(alpha_bars), dtype=torch.float32, device=device),
            torch.tensor(np.sqrt(1 - alpha_bars), dtype=torch.float32, device=device))


def learning_rate(peak, step, steps, progress):
    """ddpmLearningRate(): linear warm-up over 2% of the steps (at most 500), then cosine to 10% of the peak."""
    warmup = max(1, min(500, round(0.02 * steps)))
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, max(progress, (step - warmup) / max(1, steps - warmup)))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', type=int, default=48)
    p.add_argument('--lr', type=float, default=5e-4)
    p.add_argument('--ema-decay', type=float, default=0.999)
    p.add_argument('--init-from', help='a tf.js ddpm model folder; its weights start both the model and the EMA')
    add_run_arguments(p)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    torch.backends.cudnn.benchmark = True
    raw, meta = read_images(a.images)
    images = unit_images(raw, meta, device) * 2 - 1
    sizes = image_sizes(meta, device, a.size)
    net = Unet().to(device)
    if a.init_from:
        net.load_tfjs(read_layers_model(a.init_from))
    ema = [q.detach().clone() for q in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, eps=1e-7)
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    sqrt_ab, sqrt_1mab = schedule(device)
    os.makedirs(a.out, exist_ok=True)
    ckpt = os.path.join(a.out, 'checkpoint.pt')
    state = load_checkpoint(ckpt, device, net, opt, gen) if a.resume and os.path.exists(ckpt) else None
    if state:
        ema = [e.to(device) for e in state['ema']]

    def save():
        save_checkpoint(ckpt, {'net': net.state_dict(), 'opt': opt.state_dict(), 'ema': ema, 'gen': gen.get_state(),
                               **clock.state()})

    clock = TrainingClock(a, 100, save, state)
    size, pairs = a.size, a.batch
    params = list(net.parameters())
    while clock.progress < 1:
        step = clock.step
        lr = learning_rate(a.lr, step, a.steps, clock.progress)
        for g in opt.param_groups:
            g['lr'] = lr
        x = random_crops(images, size, pairs, gen, sizes=sizes)
        t = torch.randint(1000, (pairs,), generator=gen, device=device)
        eps = torch.randn(x.shape, generator=gen, device=device)
        xt = sqrt_ab[t][:, None, None] * x + sqrt_1mab[t][:, None, None] * eps
        loss = torch.mean(torch.square(net(xt[:, None], t.float()) - eps[:, None]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(a.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, [q.detach() for q in params], alpha=1 - decay)
        clock.record(loss, lr=lr)

    # Export the EMA, with a probe: eps_theta of the EMA network on fixed inputs at two timesteps.
    with torch.no_grad():
        for q, e in zip(params, ema):
            q.copy_(e)
    rng = np.random.default_rng(12345)
    first = np.zeros((48, 48), np.float32)  # (zero-padded when the first image is smaller)
    first[:min(48, raw.shape[1]), :min(48, raw.shape[2])] = raw[0, :48, :48].astype(np.float32) / pack_max(meta)
    probe_x = (first * 2 - 1)[None].repeat(2, 0)
    probe_t = np.array([10.0, 500.0], dtype=np.float32)
    ab = (sqrt_ab.cpu().numpy()[probe_t.astype(int)])[:, None, None]
    probe_x = (ab * probe_x + np.sqrt(1 - ab ** 2) * rng.standard_normal(probe_x.shape)).astype(np.float32)
    net.eval()
    with full_precision():
        probe_out = net(torch.from_numpy(probe_x)[:, None].to(device), torch.from_numpy(probe_t).to(device)).cpu().numpy()
    write_tensors(a.out, [(n_, net.p(n_).detach().cpu().numpy()) for n_ in net.names()] + [
        ('probe/x', probe_x.reshape(2, 48, 48, 1)),
        ('probe/t', probe_t.reshape(2, 1)),
        ('probe/eps', probe_out.reshape(2, 48, 48, 1)),
    ])
    save()
    summary = {
        'steps': clock.step, 'batch': a.batch, 'size': a.size, 'lr': a.lr, 'emaDecay': a.ema_decay, 'seed': a.seed,
        'initFrom': a.init_from, 'maxSeconds': a.max_seconds,
        'seconds': round(clock.elapsed(), 1),
        'finalLoss': clock.log[-1]['loss'] if clock.log else None,
        'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu', 'torch': torch.__version__,
        'images': meta, 'command': 'python3 tools/train/torch/ddpm.py ' + ' '.join(argv), 'log': clock.log,
    }
    with open(os.path.join(a.out, 'train.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f"done: {clock.step} steps in {summary['seconds']} s", flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
