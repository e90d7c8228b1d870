/**
 * Checks the data path of the PyTorch MID port (tools/train/torch/mid.py) against src/mid on one case: the
 * fill-in of dropped pixels (70% dropped, so the 5x5 and 9x9 windows are used too), the residual bank's
 * per-channel std table, and the noise statistics the manifest reports. The network itself is checked by every
 * import (the probe). Needs Python with PyTorch (any device); the service and its tests never run it.
 *
 *   npx tsx tools/train/torch/check-mid-port.ts [--python /usr/bin/python3]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fillMasked, randomPixelMask } from '../../../src/mid/mask.js';
import { fitResidualBank, noiseStatistics } from '../../../src/mid/sampler.js';
import { Rng } from '../../../src/util/random.js';
import { writeTensors } from '../tensor-file.js';
import { spawnLines, TORCH_DIR } from './run.js';

const PYTHON_CHECK = `
import json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import mid
from noise2score import read_tensors
t = read_tensors(sys.argv[2]); ts = json.load(open(sys.argv[2] + '/ts.json'))
chw = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1)
filled = mid.fill_masked(chw(t['image'])[None], torch.from_numpy(np.array(t['mask']))[None, None])[0]
images = [(chw(t['noise%d' % k]), chw(t['signal%d' % k])) for k in (0, 1)]
std, counts = mid.binned_std(images, 16)
table = np.stack([np.maximum(mid.fill_curve(std[c], counts[c], 100), 1e-4) for c in range(3)])
print(json.dumps({'fill': float((filled - chw(t['filled'])).abs().max()),
                  'stdTable': float(np.abs(table - np.array(ts['stdTable'])).max()),
                  'statistics': mid.noise_statistics(images) == ts['statistics']}))
`;

const { values } = parseArgs({ options: { python: { type: 'string', default: 'python3' } } });
const dir = await mkdtemp(join(tmpdir(), 'check-mid-port-'));
try {
  const rng = new Rng(3);
  const [w, h] = [40, 24];
  const image = Float32Array.from({ length: w * h * 3 }, () => rng.uniform());
  const mask = randomPixelMask(w, h, 0.7, rng);
  const images = [0, 1].map(() => ({
    noise: Float32Array.from({ length: w * h * 3 }, () => 0.02 * rng.normal()),
    signal: Float32Array.from({ length: w * h * 3 }, (_, i) => Math.min(1, (i % 97) / 80)),
    width: w,
    height: h,
  }));
  await writeTensors(dir, [
    { name: 'image', shape: [h, w, 3], values: image },
    { name: 'mask', shape: [h, w], values: Float32Array.from(mask) },
    { name: 'filled', shape: [h, w, 3], values: fillMasked(image, w, h, 3, mask) },
    ...images.flatMap((im, k) => [
      { name: `noise${k}`, shape: [h, w, 3], values: im.noise },
      { name: `signal${k}`, shape: [h, w, 3], values: im.signal },
    ]),
  ]);
  const stdTable = fitResidualBank(images, 3, { minCount: 100 }).stdTable;
  await writeFile(join(dir, 'ts.json'), JSON.stringify({ stdTable, statistics: noiseStatistics(images, 3) }));
  const { code, output } = await spawnLines(values.python, ['-c', PYTHON_CHECK, TORCH_DIR, dir], () => {});
  if (code !== 0) throw new Error(`${values.python} failed:\n${output}`);
  const result = JSON.parse(output.trim().split('\n').at(-1)!);
  console.log(
    `fill-in: largest difference ${result.fill.toExponential(2)}; std table: ${result.stdTable.toExponential(2)}; ` +
      `noise statistics ${result.statistics ? 'identical' : 'DIFFERENT'}`,
  );
  if (!(result.fill < 1e-6 && result.stdTable < 1e-6 && result.statistics)) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
