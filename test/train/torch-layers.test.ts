/**
 * The shared layer builders of the PyTorch ports (tools/train/torch/layers.py, used by noise2score.py and mid.py)
 * against the tf.js networks they are imported into: the same convolutions, under the same names, with the same
 * shapes, for the Noise2Score U-Net (concatenated and added skips, other convolution counts) and MID's network.
 * Needs /usr/bin/python3 with torch (as `npm run check:torch` does); skipped without it.
 */
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildScoreNetwork } from '../../src/denoise/network.js';
import { buildMidNetwork } from '../../src/mid/network.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { repoRoot } from '../helpers.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

type LayersModel = import('@tensorflow/tfjs').LayersModel;
const shapes = (model: LayersModel) =>
  Object.fromEntries(model.weights.map((w) => [w.originalName, w.shape]));

describe.skipIf(!hasTorch)('tools/train/torch/layers.py builds the tf.js networks', () => {
  let tf: Tf;
  let torch: Record<string, Record<string, number[]>>;
  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
    const script = [
      'import json, sys',
      "sys.path.insert(0, 'tools/train/torch')",
      'from noise2score import ScoreNet',
      'from mid import MidNet',
      "nets = {'concat': ScoreNet((4, 8, 8), 3.0), 'add': ScoreNet((4, 8, 12), 3.0, 'add', (1, 2, 1, 1, 3)),",
      "        'mid': MidNet((4, 8, 8))}",
      'print(json.dumps({k: {n: list(a.shape) for n, a in net.tfjs_weights()} for k, net in nets.items()}))',
    ].join('\n');
    const run = spawnSync(PYTHON, ['-c', script], { cwd: repoRoot, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    torch = JSON.parse(run.stdout);
  });

  it('Noise2Score U-Net, concatenated skips', () => {
    const model = buildScoreNetwork(tf, { kind: 'unet', widths: [4, 8, 8], outputScale: 3 }, 1);
    expect(torch.concat).toEqual(shapes(model));
    model.dispose();
  });

  it('Noise2Score U-Net, added skips and other convolution counts', () => {
    const architecture = {
      kind: 'unet' as const,
      widths: [4, 8, 12] as [number, number, number],
      outputScale: 3,
      skip: 'add' as const,
      convs: [1, 2, 1, 1, 3] as [number, number, number, number, number],
    };
    const model = buildScoreNetwork(tf, architecture, 1);
    expect(Object.keys(torch.add)).toHaveLength(2 * 11);
    expect(torch.add).toEqual(shapes(model));
    model.dispose();
  });

  it("MID's network", () => {
    const model = buildMidNetwork(tf, { kind: 'mid-unet', widths: [4, 8, 8] }, 1);
    expect(torch.mid).toEqual(shapes(model));
    model.dispose();
  });
});
