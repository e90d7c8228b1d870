/**
 * POST /v1/detect/adversarial and GraphQL detectAdversarial mechanics, with a tiny random-weight score model and a
 * tiny random kernel (the trained detector's quality is the benchmark's and quality.test.ts's business): raw,
 * multipart and JSON input, agreement with the library computation, determinism, the batch test, and every error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKernelNet, squaredDistances } from '../../../src/adversarial/deep-kernel.js';
import {
  calibrationFrom,
  DETECTOR_FORMAT,
  type DetectorConfig,
  decodeFloat16,
  EpsAdDetector,
  encodeFloat16,
  writeDetectorFiles,
} from '../../../src/adversarial/detector.js';
import { expectedPerturbationScore } from '../../../src/adversarial/eps.js';
import { linearSchedule } from '../../../src/diffusion/schedule.js';
import { buildUnet, predictEps, type UnetArchitecture } from '../../../src/diffusion/unet.js';
import { initTfjs, type Tf } from '../../../src/nn/backend.js';
import { fileSystemIO } from '../../../src/nn/fs-io.js';
import {
  DETECT_MS_PER_IMAGE_STEP,
  DETECT_MS_PER_PERMUTATION_PAIR,
  estimateDetectMs,
} from '../../../src/operations/detect/operation.js';
import { detectParams } from '../../../src/operations/detect/schema.js';
import { Rng } from '../../../src/util/random.js';
import { jobResult, makeApp, multipartForm, tinyModelsDir, waitForJob } from '../../helpers.js';

const TINY_UNET: UnetArchitecture = {
  kind: 'unet-eps',
  channels: [4, 8, 8],
  resBlocks: 1,
  timeEmbedding: 8,
  groups: 2,
  spaceToDepth: 2,
  normTwicePerBlock: false,
};
const FPRS = [0.01, 0.05, 0.1];

function manifest(name: string, extra: Record<string, unknown>, task: string, parameters: number) {
  return {
    name,
    version: '1',
    task,
    format: 'layers',
    inputShape: [null, 32, 32, 1],
    valueRange: [-1, 1],
    channels: 1,
    architecture: 'tiny, random weights (endpoint tests)',
    parameters,
    trainingData: 'none (random weights)',
    trainingSteps: 0,
    trainingCommand: 'test/operations/detect/routes.test.ts',
    createdAt: new Date(0).toISOString(),
    extra,
  };
}

function randomImages(count: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: count * 784 }, () => rng.uniform());
}

/** A repository with a tiny U-Net as ddpm-fashion-mnist@1 and a tiny detector eps-ad-fashion-mnist@1 built on it. */
async function makeRepo(tf: Tf) {
  const dir = path.join(tinyModelsDir(), '..', `detect-repo-${process.pid}`);
  const schedule = linearSchedule();
  const unet = buildUnet(tf, TINY_UNET);
  // The last conv starts at zero (eps = 0 everywhere); random weights make EPS depend on the image.
  const last = unet.layers.filter((l) => l.getClassName() === 'Conv2D').at(-1)!;
  last.setWeights(last.getWeights().map((w) => tf.randomNormal(w.shape, 0, 0.1, 'float32', 3)));
  const unetDir = path.join(dir, 'ddpm-fashion-mnist', '1');
  mkdirSync(unetDir, { recursive: true });
  await unet.save(fileSystemIO(unetDir));
  writeFileSync(
    path.join(unetDir, 'manifest.json'),
    JSON.stringify(
      manifest(
        'ddpm-fashion-mnist',
        { schedule: { kind: 'linear', timesteps: 1000, betaStart: 1e-4, betaEnd: 0.02 } },
        'diffusion-eps',
        unet.countParams(),
      ),
    ),
  );
  const network = (xt: import('@tensorflow/tfjs').Tensor, t: import('@tensorflow/tfjs').Tensor) =>
    predictEps(tf, unet, xt, t);
  const epsOf = async (images: Float32Array, count: number, seed: number) =>
    (
      await expectedPerturbationScore(
        tf,
        network,
        schedule,
        { data: images, count, height: 28, width: 28, channels: 1 },
        {
          timesteps: 20,
          seed,
        },
      )
    ).eps;

  const referenceCount = 12;
  const referenceEps = await epsOf(randomImages(referenceCount, 1), referenceCount, 11);
  let sq = 0;
  for (const v of referenceEps) sq += v * v;
  const inputScale = Math.sqrt(sq / referenceEps.length);
  const referenceBits = encodeFloat16(referenceEps.map((v) => v / inputScale));
  const phi = buildKernelNet(tf, { inputSize: 32, filters: [2, 4], features: 8 }, 5);
  // Bandwidths: the median squared distances of the reference, so kernel values are neither all 0 nor all 1.
  const medians = tf.tidy(() => {
    const x = tf.tensor2d(decodeFloat16(referenceBits), [referenceCount, 1024]);
    const f = phi.apply(x.reshape([-1, 32, 32, 1])) as import('@tensorflow/tfjs').Tensor2D;
    const median = (d: import('@tensorflow/tfjs').Tensor) => {
      const values = Array.from(d.dataSync()).filter((v) => v > 0);
      values.sort((a, b) => a - b);
      return values[Math.floor(values.length / 2)];
    };
    return { q: median(squaredDistances(tf, x, x)), phi: median(squaredDistances(tf, f, f)) };
  });
  const config: DetectorConfig = {
    format: DETECTOR_FORMAT,
    scoreModel: { name: 'ddpm-fashion-mnist', version: '1' },
    timesteps: 20,
    imageShape: [28, 28, 1],
    pad: 2,
    inputScale,
    kernel: { sigmaPhi: medians.phi, sigmaQ: medians.q, epsilon: 0.1 },
    reference: { file: 'reference.f16', count: referenceCount, dtype: 'float16', source: 'random images' },
    calibration: { images: 0, source: '', scores: [], fprs: [], thresholds: [] },
    referenceKernelMean: 0,
  };
  const provisional = new EpsAdDetector(tf, phi, config, decodeFloat16(referenceBits));
  config.referenceKernelMean = await provisional.computeReferenceKernelMean();
  const calibrationCount = 20;
  config.calibration = calibrationFrom(
    await provisional.scores(
      await epsOf(randomImages(calibrationCount, 2), calibrationCount, 12),
      calibrationCount,
    ),
    FPRS,
    'random images',
  );
  provisional.dispose();
  const detectorDir = path.join(dir, 'eps-ad-fashion-mnist', '1');
  await writeDetectorFiles(detectorDir, phi, config, referenceBits);
  writeFileSync(
    path.join(detectorDir, 'manifest.json'),
    JSON.stringify(
      manifest(
        'eps-ad-fashion-mnist',
        { timesteps: 20, calibratedFprs: FPRS },
        'adversarial-detector',
        phi.countParams(),
      ),
    ),
  );
  return { dir, config, epsOf, phi, referenceBits };
}

async function greyPng(width: number, height: number, seed: number): Promise<Buffer> {
  const rng = new Rng(seed);
  const px = Buffer.from(Uint8Array.from({ length: width * height }, () => rng.int(256)));
  return sharp(px, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}

async function colourPng(): Promise<Buffer> {
  const px = Buffer.alloc(28 * 28 * 3);
  for (let i = 0; i < 28 * 28; i++) px.set([200, 30, (i * 7) % 256], i * 3);
  return sharp(px, { raw: { width: 28, height: 28, channels: 3 } })
    .png()
    .toBuffer();
}

async function unitPixels(png: Buffer): Promise<Float32Array> {
  const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return Float32Array.from(data, (v) => v / 255);
}

function multipart(files: Buffer[], fields: Record<string, string> = {}, fileField = 'image') {
  return multipartForm(
    files.map((bytes, i) => [fileField, `${i}.png`, bytes]),
    fields,
  );
}

describe('POST /v1/detect/adversarial', () => {
  let tf: Tf;
  let app: Awaited<ReturnType<typeof makeApp>>;
  let repo: Awaited<ReturnType<typeof makeRepo>>;
  let pngs: Buffer[];
  const url = '/v1/detect/adversarial';
  const raw = (payload: Buffer, query = '') =>
    app.inject({ method: 'POST', url: `${url}${query}`, headers: { 'content-type': 'image/png' }, payload });
  const json = (body: Record<string, unknown>) => app.inject({ method: 'POST', url, payload: body });

  beforeAll(async () => {
    tf = (await initTfjs('wasm')).tf;
    repo = await makeRepo(tf);
    // JOBS_AUTO_MAX_COST_MS: a request of 3 images would be too costly to become a job of its own accord.
    app = await makeApp({ MODELS_DIR: repo.dir, DETECT_MAX_IMAGES: 3, JOBS_AUTO_MAX_COST_MS: 1000 });
    await app.models.settled;
    pngs = await Promise.all([1, 2, 3, 4].map((s) => greyPng(28, 28, 100 + s)));
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('scores one raw image exactly as the library does, with the calibrated threshold and a conformal p-value', async () => {
    const res = await raw(pngs[0]);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['x-model']).toBe('eps-ad-fashion-mnist@1');
    const body = res.json();
    expect(body).toMatchObject({
      detector: 'eps-ad-fashion-mnist@1',
      scoreModel: 'ddpm-fashion-mnist@1',
      timesteps: 20,
      seed: 0,
      fpr: 0.05,
      count: 1,
      batch: null,
    });
    const threshold = repo.config.calibration.thresholds[1];
    expect(body.threshold).toBeCloseTo(threshold, 10);
    const [result] = body.results;
    expect(result.adversarial).toBe(result.score > threshold);
    expect(result).toMatchObject({ index: 0, resized: false, width: 28, height: 28 });
    // The same computation in-process: EPS with seed 0 (first chunk), then the detector's statistic.
    const detector = new EpsAdDetector(tf, repo.phi, repo.config, decodeFloat16(repo.referenceBits));
    const expected = (await detector.scores(await repo.epsOf(await unitPixels(pngs[0]), 1, 0), 1))[0];
    expect(result.score).toBeCloseTo(expected, 5);
    const scores = repo.config.calibration.scores;
    const above = scores.filter((s) => s >= result.score).length;
    expect(result.pValue).toBeCloseTo((1 + above) / (1 + scores.length), 10);
    detector.dispose();
  });

  it('is deterministic for a seed and changes with it; fpr picks the calibrated threshold', async () => {
    const a = (await raw(pngs[0], '?seed=7')).json();
    const b = (await raw(pngs[0], '?seed=7')).json();
    const c = (await raw(pngs[0], '?seed=8&fpr=0.1')).json();
    expect(a.results[0].score).toBe(b.results[0].score);
    expect(c.results[0].score).not.toBe(a.results[0].score);
    expect(c.threshold).toBeCloseTo(repo.config.calibration.thresholds[2], 10);
    expect(c.fpr).toBe(0.1);
  });

  it('takes several multipart images and tests the batch against the reference', async () => {
    const { headers, payload } = multipart(pngs.slice(0, 2), { fpr: '0.01', permutations: '50' });
    const res = await app.inject({ method: 'POST', url, headers, payload });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.count).toBe(2);
    expect(body.results.map((r: { index: number }) => r.index)).toEqual([0, 1]);
    expect(body.threshold).toBeCloseTo(repo.config.calibration.thresholds[0], 10);
    expect(body.batch.count).toBe(2);
    expect(body.batch.permutations).toBe(50);
    expect(body.batch.pValue).toBeGreaterThan(0);
    expect(body.batch.pValue).toBeLessThanOrEqual(1);
    expect(body.batch.adversarial).toBe(body.batch.pValue < 0.01);
  });

  it('takes a JSON array of base64 images (the first one scored as in a single request)', async () => {
    const res = await json({ images: pngs.slice(0, 3).map((p) => p.toString('base64')), seed: 0 });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.count).toBe(3);
    expect(body.batch.count).toBe(3);
    const single = (await raw(pngs[0])).json();
    // EPS noise is per chunk of 16 images: image 0 gets the same noise alone or first in a batch.
    expect(body.results[0].score).toBeCloseTo(single.results[0].score, 6);
  });

  it('runs as a job (async in JSON, or Prefer: respond-async) with the synchronous answer, checked before queueing', async () => {
    const images = pngs.slice(0, 2).map((p) => p.toString('base64'));
    const sync = (await json({ images, seed: 4, permutations: 30 })).json();
    for (const submit of [
      () => json({ images, seed: 4, permutations: 30, async: true }),
      () =>
        app.inject({
          method: 'POST',
          url: `${url}?seed=4&permutations=30`,
          headers: { ...multipart(pngs.slice(0, 2)).headers, prefer: 'respond-async' },
          payload: multipart(pngs.slice(0, 2)).payload,
        }),
    ]) {
      const result = await jobResult(app, await submit());
      expect(result.statusCode).toBe(200);
      const body = result.json();
      expect(body.detector).toBe(sync.detector);
      expect(body.results.map((r: { score: number }) => r.score)).toEqual(
        sync.results.map((r: { score: number }) => r.score),
      );
      expect(body.batch).toEqual(sync.batch);
    }
    // The detector's checks run before anything is queued: no job, the synchronous route's coded errors.
    const fpr = await json({ images, fpr: 0.2, async: true });
    expect(fpr.statusCode).toBe(422);
    expect(fpr.json().error.details.calibratedFprs).toEqual(FPRS);
    const tooMany = await json({ images: pngs.map((p) => p.toString('base64')), async: true });
    expect(tooMany.statusCode).toBe(413);
    const ops = (await app.inject({ method: 'GET', url: '/v1/jobs/operations' })).json();
    expect(JSON.stringify(ops)).toContain('"detect"');
  });

  it('becomes a job when its estimated cost exceeds the deadline (REST and GraphQL), 413 beyond JOBS_AUTO_MAX_COST_MS', async () => {
    const params = detectParams.parse({});
    const one = [pngs[0].toString('base64')];
    // One image at T* = 20 passes a 100 ms deadline and stays within JOBS_AUTO_MAX_COST_MS (1000 here); three do not.
    expect(estimateDetectMs(params, 1)).toBeGreaterThan(100);
    expect(estimateDetectMs(params, 1)).toBeLessThanOrEqual(1000);
    expect(estimateDetectMs(params, 3)).toBeGreaterThan(1000);
    const sync = (await json({ images: one })).json();
    const automatic = await json({ images: one, timeoutMs: 100 });
    expect(automatic.statusCode, automatic.body).toBe(202);
    expect(automatic.headers['x-async-reason']).toMatch(/estimated cost/);
    const result = await jobResult(app, automatic);
    expect(result.json().results[0].score).toBe(sync.results[0].score);
    // async=false: never a job (answered now, or 504 at the deadline).
    const now = await json({ images: one, timeoutMs: 100, async: false });
    expect([200, 504]).toContain(now.statusCode);
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($images: [String!]!) { detectAdversarial(input: { images: $images, timeoutMs: 100 }) { jobId count } }',
        variables: { images: one },
      },
    });
    expect(gql.headers['x-async-reason']).toMatch(/estimated cost/);
    expect(gql.json().data.detectAdversarial.jobId, gql.body).toMatch(/\S+/);
    await waitForJob(app, `/v1/jobs/${gql.json().data.detectAdversarial.jobId}`);
    // Beyond JOBS_AUTO_MAX_COST_MS it is refused, as denoise and restore are: ask for a job.
    const three = pngs.slice(0, 3).map((p) => p.toString('base64'));
    const refused = await json({ images: three, timeoutMs: 100 });
    expect(refused.statusCode, refused.body).toBe(413);
    expect(refused.json().error).toMatchObject({ code: 'TW_PROBLEM_TOO_LARGE', details: { maxMs: 1000 } });
    const asked = await json({ images: three, timeoutMs: 100, permutations: 30, async: true });
    expect(asked.statusCode).toBe(202);
    await waitForJob(app, asked.headers.location as string);
  });

  it('estimates its cost from images x timesteps, and the permutation test of a batch', () => {
    const params = detectParams.parse({});
    expect(estimateDetectMs(params, 1)).toBe(20 * DETECT_MS_PER_IMAGE_STEP);
    expect(estimateDetectMs(detectParams.parse({ timesteps: 40 }), 1)).toBe(40 * DETECT_MS_PER_IMAGE_STEP);
    const two = estimateDetectMs(params, 2);
    const many = estimateDetectMs(detectParams.parse({ permutations: 2000 }), 2);
    expect(two).toBeGreaterThan(2 * 20 * DETECT_MS_PER_IMAGE_STEP);
    expect(many - two).toBeCloseTo(1800 * 302 * 302 * DETECT_MS_PER_PERMUTATION_PAIR, 6);
  });

  it('refuses a missing image (400), an empty batch (400) and a batch over DETECT_MAX_IMAGES (413)', async () => {
    const none = await app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'image/png' },
      payload: '',
    });
    expect(none.statusCode).toBe(400);
    const empty = await json({ images: [] });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.code).toBe('TW_VALIDATION');
    const tooMany = await json({ images: pngs.map((p) => p.toString('base64')) });
    expect(tooMany.statusCode).toBe(413);
    expect(tooMany.json().error.code).toBe('TW_PROBLEM_TOO_LARGE');
    expect(tooMany.json().error.details).toEqual({ count: 4, max: 3 });
    // max + 1 and max + 3 files: the same coded refusal (not the multipart parser's files limit)
    for (const files of [pngs, [...pngs, pngs[0], pngs[1]]]) {
      const { headers, payload } = multipart(files);
      const tooManyParts = await app.inject({ method: 'POST', url, headers, payload });
      expect(tooManyParts.statusCode).toBe(413);
      expect(tooManyParts.json().error.code).toBe('TW_PROBLEM_TOO_LARGE');
    }
  });

  it('caps the sum of the multipart images at BODY_LIMIT_BYTES, not only each file', async () => {
    const limit = Math.round(1.5 * Math.max(pngs[0].length, pngs[1].length));
    expect(pngs[0].length + pngs[1].length).toBeGreaterThan(limit);
    const small = await makeApp({ MODELS_DIR: repo.dir, DETECT_MAX_IMAGES: 3, BODY_LIMIT_BYTES: limit });
    try {
      await small.models.settled;
      const one = multipart([pngs[0]]);
      const ok = await small.inject({ method: 'POST', url, headers: one.headers, payload: one.payload });
      expect(ok.statusCode, ok.body).toBe(200);
      const two = multipart([pngs[0], pngs[1]]);
      const refused = await small.inject({ method: 'POST', url, headers: two.headers, payload: two.payload });
      expect(refused.statusCode).toBe(413);
      expect(refused.json().error.code).toBe('TW_BODY_TOO_LARGE');
    } finally {
      await small.close();
    }
  }, 60_000);

  it('refuses a wrong size with 422 naming the expected shape, unless resize=true', async () => {
    const small = await greyPng(30, 20, 9);
    const refused = await raw(small);
    expect(refused.statusCode).toBe(422);
    expect(refused.json().error.code).toBe('TW_UNPROCESSABLE');
    expect(refused.json().error.details).toMatchObject({ expected: [28, 28, 1], got: [20, 30, 1] });
    const resized = await raw(small, '?resize=true');
    expect(resized.statusCode, resized.body).toBe(200);
    expect(resized.json().results[0]).toMatchObject({ resized: true, width: 30, height: 20 });
  });

  it('refuses an input far above the detector size from its header (413), and screens async requests as sync ones', async () => {
    // 2048x2048 with resize=true: above DETECT_MAX_PIXELS (512x512); refused before a pixel is decoded.
    const big = await sharp(Buffer.alloc(2048 * 2048, 90), {
      raw: { width: 2048, height: 2048, channels: 1 },
    })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"/>');
    const cases: [Buffer, string, number, string][] = [
      [big, '?resize=true', 413, 'TW_IMAGE_TOO_LARGE'],
      [big, '?resize=true&async=true', 413, 'TW_IMAGE_TOO_LARGE'],
      [big, '?async=true', 422, 'TW_UNPROCESSABLE'],
      [svg, '?async=true', 415, 'TW_IMAGE_FORMAT_UNSUPPORTED'],
    ];
    for (const [bytes, query, status, code] of cases) {
      const res = await raw(bytes, query);
      expect(res.statusCode, `${query}: ${res.body}`).toBe(status);
      expect(res.json().error.code).toBe(code);
    }
    expect((await raw(big, '?resize=true')).json().error.details).toMatchObject({
      width: 2048,
      height: 2048,
      maxPixels: 512 * 512,
    });
  });

  it('refuses colour (422), undecodable bytes (400), uncalibrated fpr or timesteps (422), unknown detectors (404)', async () => {
    const colour = await raw(await colourPng());
    expect(colour.statusCode).toBe(422);
    expect(colour.json().error.details.expected).toEqual([28, 28, 1]);
    const garbage = await raw(Buffer.concat([pngs[0].subarray(0, 40), Buffer.alloc(40)]));
    expect(garbage.statusCode).toBe(400);
    expect(garbage.json().error.code).toBe('TW_IMAGE_INVALID');
    const fpr = await raw(pngs[0], '?fpr=0.2');
    expect(fpr.statusCode).toBe(422);
    expect(fpr.json().error.details.calibratedFprs).toEqual(FPRS);
    const timesteps = await raw(pngs[0], '?timesteps=10');
    expect(timesteps.statusCode).toBe(422);
    expect(timesteps.json().error.details.calibratedTimesteps).toEqual([20]);
    const unknown = await raw(pngs[0], '?model=eps-ad-nothing');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('TW_MODEL_NOT_FOUND');
    const badParam = await raw(pngs[0], '?fpr=2');
    expect(badParam.statusCode).toBe(400);
    const { headers, payload } = multipart([pngs[0]], {}, 'picture');
    const field = await app.inject({ method: 'POST', url, headers, payload });
    expect(field.statusCode).toBe(400);
  });

  it('is described in the OpenAPI document with its response shape', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const op = spec.paths['/v1/detect/adversarial'].post;
    const schema = op.responses['200'].content['application/json'].schema;
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['detector', 'threshold', 'results', 'batch']),
    );
  });

  it('answers GraphQL detectAdversarial like the REST route', async () => {
    const rest = (await json({ images: pngs.slice(0, 2).map((p) => p.toString('base64')) })).json();
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($images: [String!]!) { detectAdversarial(input: { images: $images }) { detector count threshold results { score adversarial pValue } batch { pValue count } } }',
        variables: { images: pngs.slice(0, 2).map((p) => p.toString('base64')) },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const data = res.json().data.detectAdversarial;
    expect(data.detector).toBe('eps-ad-fashion-mnist@1');
    expect(data.results.map((r: { score: number }) => r.score)).toEqual(
      rest.results.map((r: { score: number }) => r.score),
    );
    expect(data.batch.pValue).toBe(rest.batch.pValue);
    const bad = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($images: [String!]!) { detectAdversarial(input: { images: $images, fpr: 0.3 }) { count } }',
        variables: { images: [pngs[0].toString('base64')] },
      },
    });
    expect(bad.json().errors[0].extensions.code).toBe('TW_UNPROCESSABLE');
    // async: true answers a job id (as restore and denoise do), whose result is the same test.
    const queued = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($images: [String!]!) { detectAdversarial(input: { images: $images, async: true }) { jobId count } }',
        variables: { images: pngs.slice(0, 2).map((p) => p.toString('base64')) },
      },
    });
    const { jobId, count } = queued.json().data.detectAdversarial;
    expect(jobId, queued.body).toMatch(/\S+/);
    expect(count).toBeNull();
    expect((await waitForJob(app, `/v1/jobs/${jobId}`)).state).toBe('succeeded');
    const result = (await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}/result` })).json();
    expect(result.results.map((r: { score: number }) => r.score)).toEqual(
      rest.results.map((r: { score: number }) => r.score),
    );
  });
});
