"""The numpy exploration behind src/denoise/wiener.ts (issue 18), on the held-out SELECTION split only.

  npx tsx bench/denoise/wiener.ts --no-write --dump /tmp/wiener   # the images, as the service sees them
  /usr/bin/python3 bench/denoise/wiener_explore.py /tmp/wiener

For sigma 15, 25, 50 (level given), the mean PSNR gain over Tweedie's output alone (the pilot p) of:
  - the sliding-block empirical Wiener filter (orthonormal 2D DCT, weights P^2 / (P^2 + alpha sigma^2), block
    aggregation weight 1 / sum(w^2) times a Kaiser window), by block size, stride, Kaiser beta, alpha and mix with p;
  - the same on the noisy upload y instead of the clip-treated input;
  - BM3D's step 2 proper (collaborative filtering): for reference blocks on a stride-4 grid, the K most similar blocks
    of the pilot within +-R pixels, a 3D transform (2D DCT, then Haar along the group), Wiener weights from the
    pilot's group, aggregation 1 / sum(w^2).
The TypeScript stage (stride 3, Kaiser beta 2, alpha 1, mix 0.85) matches the row "dct8 st3 beta2 a1 mix0.85" and
the bench's own figures (`npm run bench:wiener`).
"""
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter

NAMES = ['brick', 'chelsea', 'coins', 'gravel', 'motorcycle_left']
N = 256


def load(d, name, s):
    f = lambda p: np.fromfile(p, dtype=np.float32).astype(np.float64).reshape(N, N)
    return (f(f'{d}/{name}.x.f32'), f(f'{d}/{name}.{s}.y.f32'), f(f'{d}/{name}.{s}.yi.f32'),
            f(f'{d}/{name}.{s}.p.f32'))


def psnr(x, z):
    return 10 * np.log10(1 / np.mean((x - np.clip(z, 0, 1)) ** 2))


def dctmat(n):
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2)
    return c


def haar(n):
    if n == 1:
        return np.ones((1, 1))
    h = haar(n // 2)
    m = np.vstack([np.kron(h, [1, 1]), np.kron(np.eye(n // 2), [1, -1])])
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def grid(n, b, st):
    g = list(range(0, n - b + 1, st))
    if g[-1] != n - b:
        g.append(n - b)
    return g


def sliding_wiener(y, p, sigma, b=8, stride=3, alpha=1.0, beta=2.0):
    c = dctmat(b)
    rows, cols = grid(N, b, stride), grid(N, b, stride)
    ty = c @ sliding_window_view(y, (b, b))[np.ix_(rows, cols)] @ c.T
    tp = c @ sliding_window_view(p, (b, b))[np.ix_(rows, cols)] @ c.T
    w = tp ** 2 / (tp ** 2 + alpha * sigma ** 2)
    z = c.T @ (w * ty) @ c
    k = np.kaiser(b, beta)
    win = np.outer(k, k)
    aw = 1 / np.maximum((w ** 2).sum(axis=(2, 3)), 1e-3)
    acc = np.zeros_like(y)
    ws = np.zeros_like(y)
    for a, r in enumerate(rows):
        for e, q in enumerate(cols):
            acc[r:r + b, q:q + b] += aw[a, e] * win * z[a, e]
            ws[r:r + b, q:q + b] += aw[a, e] * win
    return acc / ws


def collaborative(y, p, sigma, b=8, stride=4, radius=8, k=16):
    rows, cols = grid(N, b, stride), grid(N, b, stride)
    n_pos = N - b + 1
    offsets = [(dr, dc) for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)]
    dist = np.empty((len(offsets), n_pos, n_pos))
    for j, (dr, dc) in enumerate(offsets):
        shifted = np.full_like(p, np.nan)
        r0, r1, c0, c1 = max(0, -dr), min(N, N - dr), max(0, -dc), min(N, N - dc)
        shifted[r0:r1, c0:c1] = p[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        sq = np.nan_to_num((p - shifted) ** 2, nan=1e9)
        dist[j] = uniform_filter(sq, size=b, mode='constant', origin=(-(b // 2), -(b // 2)))[:n_pos, :n_pos]
    c = dctmat(b)
    g = haar(k)
    rr, cc = (a.ravel() for a in np.meshgrid(rows, cols, indexing='ij'))
    best = np.argsort(dist[:, rr, cc], axis=0, kind='stable')[:k]
    off = np.array(offsets)
    gr, gc = rr[None, :] + off[best, 0], cc[None, :] + off[best, 1]
    gp = sliding_window_view(p, (b, b))[gr, gc]
    gy = sliding_window_view(y, (b, b))[gr, gc]
    tp = np.einsum('kn,nrij->krij', g, c @ gp @ c.T)
    ty = np.einsum('kn,nrij->krij', g, c @ gy @ c.T)
    w = tp ** 2 / (tp ** 2 + sigma ** 2)
    z = c.T @ np.einsum('nk,krij->nrij', g.T, w * ty) @ c
    aw = 1 / np.maximum((w ** 2).sum(axis=(0, 2, 3)), 1e-3)
    acc = np.zeros_like(y)
    ws = np.zeros_like(y)
    for m in range(k):
        for j in range(len(rr)):
            acc[gr[m, j]:gr[m, j] + b, gc[m, j]:gc[m, j] + b] += aw[j] * z[m, j]
            ws[gr[m, j]:gr[m, j] + b, gc[m, j]:gc[m, j] + b] += aw[j]
    out = p.copy()
    out[ws > 0] = acc[ws > 0] / ws[ws > 0]
    return out


def main(d):
    mix = lambda z, p, lam: lam * z + (1 - lam) * p
    for s in [15, 25, 50]:
        sigma = s / 255
        res = {}
        add = lambda key, v: res.setdefault(key, []).append(v)
        for name in NAMES:
            x, y, yi, p = load(d, name, s)
            add('pilot (Tweedie alone)', psnr(x, p))
            for b, st in [(4, 1), (6, 2), (8, 3), (12, 4), (16, 6)]:
                add(f'dct{b} st{st} beta2 a1 mix0.85', psnr(x, mix(sliding_wiener(yi, p, sigma, b, st), p, 0.85)))
            for beta in [0, 4]:
                add(f'dct8 st3 beta{beta} a1 mix0.85', psnr(x, mix(sliding_wiener(yi, p, sigma, beta=beta), p, 0.85)))
            for alpha in [0.7, 1.5]:
                z = sliding_wiener(yi, p, sigma, alpha=alpha)
                add(f'dct8 st3 beta2 a{alpha} mix0.85', psnr(x, mix(z, p, 0.85)))
            add('dct8 st3 beta2 a1 mix0.85, y as uploaded', psnr(x, mix(sliding_wiener(y, p, sigma), p, 0.85)))
            z = collaborative(yi, p, sigma)
            add('collaborative st4 R8 K16 (Haar), mix 1', psnr(x, z))
            add('collaborative st4 R8 K16 (Haar), mix 0.85', psnr(x, mix(z, p, 0.85)))
        base = np.mean(res['pilot (Tweedie alone)'])
        print(f'sigma {s}: pilot {base:.3f} dB')
        for key, v in res.items():
            print(f'  {key:48s} {np.mean(v):.3f} {np.mean(v) - base:+.3f}', flush=True)


if __name__ == '__main__':
    main(sys.argv[1])
