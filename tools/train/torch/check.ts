/**
 * `npm run check:torch [-- --python PATH] [--keep]`: the PyTorch path of `npm run train` end to end, on the CPU
 * (`--device torch-cpu`), on a few generated images, into a temporary folder: Noise2Score from clean images
 * (--clean-dir) and from noisy images alone (--images: Gaussian and Poisson, on images of four sizes), and the
 * natural-grey DDPM prior and MID (two rounds), each for a handful of steps; each run's weights are imported (probe checked) into a
 * model folder. A fresh noisy-only parity fixture
 * (noisy_fixture.py) is checked against the TypeScript trainer (parity.ts: levels and sigma_a to 1e-6, the loss to
 * 1e-4, relative). The service then loads the folder and serves each model (POST /v1/denoise with model=<name>,
 * POST /v1/restore with model=<name>). Not part of `npm test` (it needs PyTorch; about 30 s).
 *
 * Exit codes: 0 all passed; 1 a step failed; 2 no PyTorch found (nothing was checked: the line says so).
 * PyTorch is looked for in --python (or $PYTHON) when given, else in python3, then /usr/bin/python3.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { buildApp } from '../../../src/app.js';
import { loadConfig } from '../../../src/config.js';
import { initTfjs } from '../../../src/nn/backend.js';
import { Rng } from '../../../src/util/random.js';
import { runDdpmCli } from '../ddpm.js';
import { runMidCli } from '../mid.js';
import { runNoise2ScoreCli } from '../noise2score-cli.js';
import { noisyParity, readNoisyFixture } from './parity.js';
import { checkTorch, runTorch, TORCH_DIR } from './run.js';

/**
 * A smooth grey scene with a bright square (seeded), as 8-bit; with `sigma` > 0, plus Gaussian noise of sigma/255.
 */
function scene(seed: number, sigma: number, width: number, height: number): Buffer {
  const rng = new Rng(1000 + seed);
  const px = Buffer.alloc(width * height);
  for (let r = 0; r < height; r++)
    for (let c = 0; c < width; c++) {
      const inside = r > 10 + 4 * seed && r < 36 && c > 14 && c < 50;
      const clean = inside ? 190 : 40 + 2 * c + r;
      px[r * width + c] = Math.max(0, Math.min(255, Math.round(clean + sigma * rng.normal())));
    }
  return px;
}

/** Four 64x64 scenes; with `mixed`, of four sizes (as a folder of one's own shots may be). */
async function writeImages(dir: string, sigma: number, mixed = false): Promise<void> {
  await mkdir(dir, { recursive: true });
  const sizes = mixed
    ? [
        [64, 64],
        [72, 48],
        [56, 60],
        [80, 40],
      ]
    : [[64, 64]];
  for (let k = 0; k < 4; k++) {
    const [width, height] = sizes[k % sizes.length];
    await sharp(scene(k, sigma, width, height), { raw: { width, height, channels: 1 } })
      .png()
      .toFile(join(dir, `scene-${k}.png`));
  }
}

async function findTorch(candidates: string[]): Promise<{ python: string; torch: string } | null> {
  for (const python of candidates) {
    try {
      return { python, ...(await checkTorch(python, 'torch-cpu')) };
    } catch {
      // next candidate
    }
  }
  return null;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { python: { type: 'string' }, keep: { type: 'boolean', default: false } },
  });
  // An interpreter named explicitly is the only one tried; else python3, then the system's.
  const named = values.python ?? process.env.PYTHON;
  const candidates = named ? [named] : ['python3', '/usr/bin/python3'];
  const found = await findTorch([...new Set(candidates)]);
  if (!found) {
    console.error(
      `check:torch: SKIPPED, nothing checked: no PyTorch found (tried ${[...new Set(candidates)].join(', ')}). ` +
        'Install PyTorch, or name its interpreter with --python PATH or PYTHON=PATH.',
    );
    return 2;
  }
  const { python, torch } = found;
  console.log(`check:torch: PyTorch ${torch} in ${python}, on the CPU (--device torch-cpu)`);
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'check-torch-'));
  const models = join(dir, 'models');
  const passed: string[] = [];
  try {
    await writeImages(join(dir, 'clean'), 0);
    await writeImages(join(dir, 'noisy'), 25, true);
    const common = ['--device', 'torch-cpu', '--python', python, '--checkpoint-minutes', '100'];
    const train = async (
      what: string,
      run: (args: string[], commandLine: string) => Promise<void>,
      args: string[],
    ) => {
      console.log(`\n== ${what}`);
      await run([...args, ...common], `npm run train -- ${what} (check:torch)`);
      passed.push(what);
    };
    await train('noise2score gaussian --clean-dir', runNoise2ScoreCli, [
      ...['--noise', 'gaussian', '--clean-dir', join(dir, 'clean'), '--references', join(dir, 'clean')],
      ...['--steps', '6', '--batch', '4', '--patch', '32', '--out', join(models, 'n2s-clean', '1')],
      ...['--checkpoint-dir', join(dir, 'ck', 'n2s-clean')],
    ]);
    await train('noise2score gaussian --images (noisy only)', runNoise2ScoreCli, [
      ...['--noise', 'gaussian', '--images', join(dir, 'noisy'), '--references', join(dir, 'clean')],
      ...['--steps', '6', '--batch', '4', '--patch', '32', '--out', join(models, 'n2s-noisy', '1')],
      ...['--checkpoint-dir', join(dir, 'ck', 'n2s-noisy')],
    ]);
    await train('noise2score poisson --images (noisy only; zeta per image)', runNoise2ScoreCli, [
      ...['--noise', 'poisson', '--images', join(dir, 'noisy'), '--references', 'none'],
      ...['--steps', '4', '--batch', '4', '--patch', '32', '--out', join(models, 'n2s-poisson', '1')],
      ...['--checkpoint-dir', join(dir, 'ck', 'n2s-poisson')],
    ]);
    await train('ddpm natural-grey', runDdpmCli, [
      ...['--images', join(dir, 'clean'), '--steps', '3', '--batch', '2', '--size', '48'],
      ...['--samples', '1', '--sample-steps', '2', '--out', join(models, 'ddpm-check', '1')],
      ...['--checkpoint-dir', join(dir, 'ck', 'ddpm')],
    ]);
    await train('mid (two rounds)', runMidCli, [
      ...['--images', join(dir, 'noisy'), '--clean', join(dir, 'clean'), '--round-steps', '3,2'],
      ...['--batch', '2', '--patch', '16', '--eval-crop', '40', '--out', join(models, 'mid-check', '1')],
      ...['--checkpoint-dir', join(dir, 'ck', 'mid')],
    ]);

    console.log('\n== noisy-only Noise2Score: PyTorch against tf.js on a fresh fixture');
    const fixture = join(dir, 'noisy-parity.json');
    await runTorch({ python, args: [join(TORCH_DIR, 'noisy_fixture.py'), fixture] }, (line) =>
      console.log(line),
    );
    const { tf } = await initTfjs('wasm');
    for (const [family, p] of Object.entries(await noisyParity(tf, await readNoisyFixture(fixture)))) {
      console.log(
        `${family}: loss tf.js ${p.tfjsLoss.toFixed(6)}, PyTorch ${p.torchLoss.toFixed(6)}, relative ` +
          `${p.loss.toExponential(1)}; levels ${p.level.toExponential(1)}, sigma_a ${p.lossScale.toExponential(1)}`,
      );
      if (!(p.loss < 1e-4 && p.level < 1e-6 && p.lossScale < 1e-6))
        throw new Error(
          `${family}: the PyTorch noisy-only batch or loss differs from the TypeScript trainer's`,
        );
    }
    passed.push('noisy-only parity');

    console.log('\n== the service loads and serves the model folders');
    const app = await buildApp(
      loadConfig({ MODELS_DIR: models, WORKERS: '1', TFJS_BACKEND: 'wasm', LOG_LEVEL: 'silent' }),
    );
    try {
      await app.ready();
      await app.models.settled;
      const listed = (await app.inject({ url: '/v1/models' })).json().models as {
        name: string;
        state: string;
      }[];
      for (const name of ['n2s-clean', 'n2s-noisy', 'ddpm-check', 'mid-check']) {
        const state = listed.find((m) => m.name === name)?.state;
        if (state !== 'ready') throw new Error(`the service lists ${name} as ${state ?? 'missing'}`);
      }
      const noisy = await sharp(join(dir, 'noisy', 'scene-0.png'))
        .png()
        .toBuffer();
      const served: [string, string][] = [
        ['/v1/denoise?noise=gaussian&level=25&model=n2s-clean', 'n2s-clean@1'],
        ['/v1/denoise?noise=gaussian&model=n2s-noisy', 'n2s-noisy@1'],
        ['/v1/restore?task=denoise&sigmaY=0.1&steps=2&model=ddpm-check&output=json', 'ddpm-check@1'],
        ['/v1/denoise?method=mid&masks=2&seed=1&model=mid-check', 'mid-check@1'],
      ];
      for (const [url, model] of served) {
        const res = await app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': 'image/png' },
          payload: noisy,
        });
        if (res.statusCode !== 200)
          throw new Error(`POST ${url}: ${res.statusCode} ${res.body.slice(0, 300)}`);
        const by = res.headers['x-model'] ?? (url.includes('output=json') ? res.json().model : undefined);
        if (by !== model) throw new Error(`POST ${url} was served by ${by}, not ${model}`);
        console.log(`POST ${url}: 200, served by ${model}`);
      }
      passed.push('served');
    } finally {
      await app.close();
    }
    console.log(
      `\ncheck:torch: OK (${passed.join('; ')}) in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
    return 0;
  } catch (error) {
    console.error(
      `\ncheck:torch: FAILED after ${passed.join('; ') || 'nothing'}: ${error instanceof Error ? error.message : error}`,
    );
    return 1;
  } finally {
    if (values.keep) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
