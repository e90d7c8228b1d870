"""
The layers the PyTorch ports share (noise2score.py's ScoreNet, mid.py's MidNet, ddpm.py's U-Net): TF 'same'
padding, space-to-depth and back as tf.js lays them out, and the pixel-shuffle U-Net of src/nn/unet.ts as a list of
named convolutions (conv1.. in the order tf.js numbers them) with its stages. A training tool only, like the scripts
that import it: they run as `python3 tools/train/torch/<script>.py` (or from this folder, as the gpu-run*.sh
scripts do), and each puts its own folder first on sys.path, so this file is found next to them wherever the folder
is copied.
"""
import numpy as np
import torch
import torch.nn.functional as F


def same_pad(x, k, s):
    """TF 'same' padding for NCHW x: the extra row/column of an odd total goes to the bottom/right."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad takes the last dimension first
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


def space_to_depth(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, b * b * c, h // b, w // b)


def depth_to_space(x, b):
    n, c, h, w = x.shape
    d = c // (b * b)
    return x.reshape(n, b, b, d, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, d, h * b, w * b)


def unet_convolutions(cin, widths, convs, joined, cout, head):
    """The convolutions of the pixel-shuffle U-Net of src/nn/unet.ts on a space-to-depth input of `cin` channels:
    stages e1, e2 (stride 2), bottom (stride 2) of convs[0..2] 3x3 ReLU convolutions, 1x1 ReLU convolutions to
    4x the channels before each depth-to-space (up2, up1), decoder stages d2, d1 of convs[3..4] on the skip joined
    `joined` times as wide (2: concatenated, 1: added), and a linear 3x3 `head` stage to `cout` channels.
    Returns (specs, stages): specs [(name, in, out, kernel, stride, relu)] in tf.js's order, stages {stage: names}."""
    c1, c2, c3 = widths
    n1, n2, n3, m2, m1 = convs
    specs = []

    def add(cin, cout, k=3, s=1, relu=True):
        specs.append((f'conv{len(specs) + 1}', cin, cout, k, s, relu))
        return [specs[-1][0]]

    def stack(cin, cout, count, s=1):
        add(cin, cout, s=s)
        for _ in range(count - 1):
            add(cout, cout)
        return [spec[0] for spec in specs[-count:]]

    stages = {'e1': stack(cin, c1, n1), 'e2': stack(c1, c2, n2, 2), 'bottom': stack(c2, c3, n3, 2)}
    stages['up2'] = add(c3, 4 * c2, k=1)
    stages['d2'] = stack(joined * c2, c2, m2)
    stages['up1'] = add(c2, 4 * c1, k=1)
    stages['d1'] = stack(joined * c1, c1, m1)
    stages[head] = add(c1, cout, relu=False)
    return specs, stages


class ConvNet(torch.nn.Module):
    """A network held as named convolutions (self.specs from unet_convolutions, self.weight and self.bias
    ParameterDicts by name, PyTorch layout): its weights, running a stage, and the weights to and from tf.js layout."""

    def make_weights(self, kernel):
        """One kernel [out, in, k, k] per spec, from kernel(name, cin, cout, k, relu) in the specs' order (so the
        random draws come in tf.js's order), and zero biases."""
        self.weight = torch.nn.ParameterDict()
        self.bias = torch.nn.ParameterDict()
        for name, cin, cout, k, _, relu in self.specs:
            self.weight[name] = torch.nn.Parameter(kernel(name, cin, cout, k, relu))
            self.bias[name] = torch.nn.Parameter(torch.zeros(cout))
        self.spec = {s[0]: s for s in self.specs}

    def conv(self, name, x):
        _, _, _, k, s, relu = self.spec[name]
        y = F.conv2d(same_pad(x, k, s), self.weight[name], self.bias[name], stride=s)
        return F.relu(y) if relu else y

    def run(self, stage, x):
        for name in self.stages[stage]:
            x = self.conv(name, x)
        return x

    def load_tfjs(self, weights):
        with torch.no_grad():
            for name, *_ in self.specs:
                self.weight[name].copy_(torch.from_numpy(np.array(weights[f'{name}/kernel'])).permute(3, 2, 0, 1))
                self.bias[name].copy_(torch.from_numpy(np.array(weights[f'{name}/bias'])))

    def tfjs_weights(self):
        out = []
        for name, *_ in self.specs:
            out.append((f'{name}/kernel', self.weight[name].detach().permute(2, 3, 1, 0).cpu().numpy()))
            out.append((f'{name}/bias', self.bias[name].detach().cpu().numpy()))
        return out
