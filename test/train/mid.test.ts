/**
 * MID on a folder of one's own noisy images (any names, any of JPEG/PNG/TIFF, 8/16-bit, grey or colour), clean
 * photographs never paired with them, and references that only validate: a tiny run of two short rounds,
 * split by --stop-at-step and --resume, exports a model the manifest describes.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { Rng } from '../../src/util/random.js';
import { type TrainMidOptions, trainMid } from '../../tools/train/mid.js';
import { loadMidData } from '../../tools/train/mid-data.js';

let dir: string;

/** A 32x32 scene k: a gradient and a square, RGB on [0, 255]. */
function scene(k: number): Float32Array {
  const out = new Float32Array(32 * 32 * 3);
  for (let i = 0; i < 32 * 32; i++) {
    const r = Math.floor(i / 32);
    const c = i % 32;
    const inside = r > 6 + k && r < 24 && c > 5 && c < 26 - k;
    for (let ch = 0; ch < 3; ch++) out[i * 3 + ch] = inside ? 180 + 20 * ch : 40 + 4 * c + 15 * ch + 5 * k;
  }
  return out;
}

async function save(values: Float32Array, channels: 1 | 3, path: string, sixteen = false): Promise<void> {
  const raw = sixteen
    ? Buffer.from(Uint16Array.from(values, (v) => Math.round(257 * Math.min(255, Math.max(0, v)))).buffer)
    : Buffer.from(Uint8Array.from(values, (v) => Math.round(Math.min(255, Math.max(0, v)))));
  let image = sharp(raw, { raw: { width: 32, height: 32, channels } });
  if (sixteen) image = image.toColourspace(channels === 1 ? 'grey16' : 'rgb16');
  await image.toFile(path);
}

function noisy(k: number, rng: Rng): Float32Array {
  return scene(k).map((v) => v + 12 * rng.normal());
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mid-train-'));
  for (const sub of ['noisy', 'clean', 'refs']) await mkdir(join(dir, sub));
  const rng = new Rng(11);
  await save(noisy(0, rng), 3, join(dir, 'noisy', 'DSC 0001.JPG'));
  await save(noisy(1, rng), 3, join(dir, 'noisy', 'shot_b.png'), true); // 16-bit colour
  const grey = noisy(2, rng).filter((_, i) => i % 3 === 1);
  await save(grey, 1, join(dir, 'noisy', 'micro.tif'), true); // 16-bit grey
  await save(noisy(3, rng), 3, join(dir, 'noisy', 'held.png'));
  await save(scene(3), 3, join(dir, 'refs', 'held.tiff')); // the reference of held.png, another extension
  for (const k of [4, 5]) await save(scene(k), 3, join(dir, 'clean', `photo${k}.jpg`));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('MID training on a folder of noisy images', () => {
  it('reads any names and formats; a reference makes its noisy image a held-out validation pair', async () => {
    const data = await loadMidData({
      noisyDir: join(dir, 'noisy'),
      cleanDir: join(dir, 'clean'),
      referencesDir: join(dir, 'refs'),
      extraClean: [],
      patch: 16,
      evalCrop: 0,
    });
    expect(data.noisy.map((im) => im.name)).toEqual(['DSC 0001.JPG', 'micro.tif', 'shot_b.png']);
    expect(data.validation.map((v) => v.noisy.name)).toEqual(['held.png']);
    expect(data.clean).toHaveLength(2);
    for (const im of [...data.noisy, ...data.clean]) {
      expect(im.data.length).toBe(32 * 32 * 3);
      expect(Math.max(...im.data)).toBeLessThanOrEqual(1);
      expect(Math.max(...im.data)).toBeGreaterThan(0.5); // 16-bit read at its scale, not as 0..1/257
    }
    // The grey 16-bit image came in as three equal channels.
    const micro = data.noisy[1];
    expect(micro.data[30]).toBeCloseTo(micro.data[31], 2);
    await expect(
      loadMidData({ noisyDir: join(dir, 'noisy'), extraClean: [], patch: 16, evalCrop: 0 }),
    ).rejects.toThrow(/give --clean DIR/);
    await expect(
      loadMidData({
        noisyDir: join(dir, 'nope'),
        cleanDir: join(dir, 'clean'),
        extraClean: [],
        patch: 16,
        evalCrop: 0,
      }),
    ).rejects.toThrow(/nope: no such folder/);
  });

  it('two rounds, stopped and resumed, export a model with data, command, lineage and validation', async () => {
    const { tf } = await initTfjs('wasm');
    const lines: string[] = [];
    const options: TrainMidOptions = {
      noisyDir: join(dir, 'noisy'),
      cleanDir: join(dir, 'clean'),
      referencesDir: join(dir, 'refs'),
      extraClean: [],
      roundSteps: [3, 2],
      batch: 2,
      patch: 16,
      lr: 1e-3,
      fineTuneLr: 3e-4,
      maskRatio: 0.3,
      residualMasks: 2,
      validationMasks: 1,
      evalCrop: 0,
      out: join(dir, 'models', 'my-camera', '1'),
      checkpointDir: join(dir, 'ck'),
      checkpointMinutes: 100,
      resume: false,
      seed: 2,
      commandLine: 'npm run train -- mid --images noisy --clean clean --references refs (test)',
      architecture: { kind: 'mid-unet', widths: [4, 8, 8] },
      log: (line) => lines.push(line),
    };
    await trainMid(tf, { ...options, stopAtStep: 4 });
    expect(lines.join('\n')).toMatch(/stopped at step 1 of 2/);
    // A resume with another batch stream or network is refused, as the other trainers refuse it.
    await expect(trainMid(tf, { ...options, resume: true, batch: 3 })).rejects.toThrow(
      /made with batch 2, not batch 3: resume with the same settings/,
    );
    await expect(
      trainMid(tf, { ...options, resume: true, architecture: { kind: 'mid-unet', widths: [4, 8, 16] } }),
    ).rejects.toThrow(/made with widths 4,8,8, not widths 4,8,16/);
    await trainMid(tf, { ...options, resume: true });
    expect(lines.join('\n')).toMatch(/resumed at round 1, step 1/);
    const manifest = JSON.parse(await readFile(join(options.out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({ name: 'my-camera', version: '1', task: 'denoise', trainingSteps: 5 });
    expect(manifest.metrics.status).toBe('final');
    expect(manifest.metrics.validationPsnr).toBeGreaterThan(5);
    expect(manifest.extra.rounds).toHaveLength(2);
    expect(manifest.extra.rounds[0].validationPerImage[0].name).toBe('held');
    expect(manifest.trainingData).toMatch(/3 noisy images.*2 clean images.*1 noisy images with a reference/);
    expect(manifest.extra.lineage).toMatch(/resumed at step 4 from/);
    expect(lines.join('\n')).not.toMatch(/NaN|Infinity/);
  }, 120_000);
});
