/**
 * The denoise operation's behaviour the spec gives it: a request whose estimated cost exceeds its deadline becomes
 * a job (as restore does), MID answers no meaningless noise level, and a model of the wrong kind is refused (422,
 * with the expected task) on every path, before anything is queued.
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildScoreNetwork } from '../../../src/denoise/network.js';
import { buildMidNetwork } from '../../../src/mid/network.js';
import { initTfjs } from '../../../src/nn/backend.js';
import { fileSystemIO } from '../../../src/nn/fs-io.js';
import {
  DENOISE_MS_PER_MEGAPIXEL,
  estimateDenoiseMs,
  levelRangeWarnings,
  WIENER_MS_PER_MEGAPIXEL,
} from '../../../src/operations/denoise/operation.js';
import { denoiseParams } from '../../../src/operations/denoise/schema.js';
import { jobResult, makeApp, tinyModelsDir, waitForJob } from '../../helpers.js';

const manifest = (name: string, extra: Record<string, unknown>, params: number) => ({
  name,
  version: '1',
  format: 'layers',
  valueRange: [0, 1],
  description: 'random weights, for operation tests',
  parameters: params,
  trainingData: 'none (random weights)',
  trainingSteps: 0,
  trainingCommand: 'test/operations/denoise/operation.test.ts',
  createdAt: new Date(0).toISOString(),
  ...extra,
});

async function makeRepo(): Promise<string> {
  const dir = path.join(tinyModelsDir(), '..', `operations-denoise-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  cpSync(path.join(tinyModelsDir(), 'gaussian-blur'), path.join(dir, 'gaussian-blur'), { recursive: true });
  const { tf } = await initTfjs('wasm');
  const score = buildScoreNetwork(tf, { kind: 'unet', widths: [4, 8, 8], outputScale: 1 }, 1);
  const scoreDir = path.join(dir, 'noise2score-gaussian', '1');
  mkdirSync(scoreDir, { recursive: true });
  await score.save(fileSystemIO(scoreDir));
  writeFileSync(
    path.join(scoreDir, 'manifest.json'),
    JSON.stringify(
      manifest(
        'noise2score-gaussian',
        {
          task: 'denoise-score',
          inputShape: [null, null, null, 1],
          channels: 1,
          noiseFamily: 'gaussian',
          architecture: { kind: 'unet', widths: [4, 8, 8], outputScale: 1, multiple: 8 },
        },
        score.countParams(),
      ),
    ),
  );
  score.dispose();
  const mid = buildMidNetwork(tf, { kind: 'mid-unet', widths: [4, 8, 8] }, 1);
  const midDir = path.join(dir, 'mid-rgb', '1');
  mkdirSync(midDir, { recursive: true });
  await mid.save(fileSystemIO(midDir));
  writeFileSync(
    path.join(midDir, 'manifest.json'),
    JSON.stringify(
      manifest(
        'mid-rgb',
        {
          task: 'denoise',
          inputShape: [null, null, null, 4],
          channels: 4,
          noiseFamily: 'real-camera',
          architecture: { kind: 'mid-unet', widths: [4, 8, 8], multiple: 8 },
          extra: { maskRatio: 0.3, masksDefault: 1 },
        },
        mid.countParams(),
      ),
    ),
  );
  mid.dispose();
  return dir;
}

async function rgbPng(w: number, h: number): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

describe('the denoise operation', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  let small: Buffer;
  beforeAll(async () => {
    app = await makeApp({ MODELS_DIR: await makeRepo() });
    await app.models.settled;
    small = await rgbPng(24, 16);
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });
  const post = (url: string, payload: Buffer, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url, headers: { 'content-type': 'image/png', ...headers }, payload });

  it('MID answers no x-noise-level header and a null level in JSON; Noise2Score answers its level', async () => {
    const image = await post('/v1/denoise?method=mid', small);
    expect(image.statusCode, image.body).toBe(200);
    expect(image.headers['x-noise-level']).toBeUndefined();
    expect(image.headers['x-noise-level-estimated']).toBeUndefined();
    expect(image.headers['x-model']).toBe('mid-rgb@1');
    const json = await post('/v1/denoise?method=mid&output=json', small);
    expect(json.json().level).toBeNull();
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query: 'query($i: String!) { denoise(input: { image: $i, method: MID }) { level model } }',
        variables: { i: small.toString('base64') },
      },
    });
    expect(gql.json().data.denoise, gql.body).toEqual({ level: null, model: 'mid-rgb@1' });
    const n2s = await post('/v1/denoise?noise=gaussian&level=25', small);
    expect(n2s.statusCode, n2s.body).toBe(200);
    expect(n2s.headers['x-noise-level']).toBe('25');
  });

  it('becomes a job when its estimated cost exceeds the deadline, unless async=false', async () => {
    // An image whose estimate passes a 100 ms deadline (and stays under JOBS_AUTO_MAX_COST_MS).
    const params = denoiseParams.parse({ level: '25' });
    let side = 16;
    while (estimateDenoiseMs(params, side, side) <= 150) side *= 2;
    const big = await rgbPng(side, side);
    const accepted = await post('/v1/denoise?noise=gaussian&level=25&timeoutMs=100', big);
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect(accepted.headers['x-async-reason']).toMatch(/estimated cost/);
    const result = await jobResult(app, accepted);
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toBe('image/png');
    expect((await sharp(result.rawPayload).metadata()).width).toBe(side);
    // Below the deadline, the same image is answered now.
    const now = await post('/v1/denoise?noise=gaussian&level=25', big);
    expect(now.statusCode).toBe(200);
    // async=false: never a job; answered now or 504 at its deadline.
    const sync = await post('/v1/denoise?noise=gaussian&level=25&timeoutMs=100&async=false', big);
    expect([200, 504]).toContain(sync.statusCode);
  });

  it('over GraphQL too: a job id when the estimated cost exceeds the deadline or when asked', async () => {
    const params = denoiseParams.parse({ level: '25' });
    let side = 16;
    while (estimateDenoiseMs(params, side, side) <= 150) side *= 2;
    const big = (await rgbPng(side, side)).toString('base64');
    const gql = (image: string, args: string) =>
      app.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: `query($i: String!) { denoise(input: { image: $i, level: 25${args} }) { jobId width model } }`,
          variables: { i: image },
        },
      });
    const automatic = await gql(big, ', timeoutMs: 100');
    expect(automatic.statusCode, automatic.body).toBe(200);
    expect(automatic.headers['x-async-reason']).toMatch(/estimated cost/);
    const { jobId, width } = automatic.json().data.denoise;
    expect(jobId, automatic.body).toMatch(/\S+/);
    expect(width).toBeNull();
    expect((await waitForJob(app, `/v1/jobs/${jobId}`)).state).toBe('succeeded');
    const result = await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}/result` });
    expect(result.json(), result.body).toMatchObject({ width: side, model: 'noise2score-gaussian@1' });
    // Asked for: a job whatever the cost; async: false or a cheap image: answered now.
    const asked = await gql(small.toString('base64'), ', async: true');
    expect(asked.json().data.denoise.jobId, asked.body).toMatch(/\S+/);
    const now = await gql(small.toString('base64'), '');
    expect(now.json().data.denoise, now.body).toEqual({
      jobId: null,
      width: 24,
      model: 'noise2score-gaussian@1',
    });
    const sync = await gql(big, ', timeoutMs: 100, async: false');
    expect(sync.headers['x-async-reason']).toBeUndefined();
    expect(sync.json().data?.denoise?.jobId ?? null).toBeNull();
  });

  it('refuses a model of another task with 422 and the expected task, now and before queueing a job', async () => {
    const asked = [
      post('/v1/denoise?model=gaussian-blur', small),
      post('/v1/denoise?model=gaussian-blur&async=true', small),
      post('/v1/denoise?model=gaussian-blur', small, { prefer: 'respond-async' }),
      post('/v1/denoise?method=mid&model=noise2score-gaussian', small),
      app.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'denoise', input: { image: small.toString('base64') } },
      }),
    ];
    const [sync, flagged, preferred, midWrong, viaJobs] = await Promise.all(asked);
    for (const res of [sync, flagged, preferred]) {
      expect(res.statusCode, res.body).toBe(422);
      expect(res.json().error.details).toMatchObject({ task: 'blur', expected: ['denoise-score'] });
    }
    expect(midWrong.statusCode, midWrong.body).toBe(422);
    expect(midWrong.json().error.details).toMatchObject({ task: 'denoise-score', expected: ['denoise'] });
    // The job API takes the image as bytes from the operation routes only: a base64 string is refused (400).
    expect(viaJobs.statusCode).toBe(400);
  });
});

describe('estimateDenoiseMs', () => {
  it('counts the TV rule a second pass for Gaussian level=auto (a clipped image needs it), and ensemble passes', () => {
    // The network passes only (the Wiener stage is counted below).
    const ms = (q: Record<string, string>) =>
      estimateDenoiseMs(denoiseParams.parse({ ...q, refine: 'none' }), 512, 512);
    const plain = ms({});
    expect(ms({ estimator: 'tv' })).toBeCloseTo(2 * plain, 6);
    expect(ms({ estimator: 'tv', level: '25' })).toBeCloseTo(plain, 6);
    expect(ms({ estimator: 'tv', noise: 'gamma' })).toBeCloseTo(plain, 6);
    expect(ms({ ensemble: '4' })).toBeCloseTo(4 * plain, 6);
  });

  it('counts the Wiener stage for Gaussian noise unless refine=none (once, whatever the ensemble)', () => {
    const ms = (q: Record<string, string>) => estimateDenoiseMs(denoiseParams.parse(q), 512, 512);
    const wiener = 0.262144 * WIENER_MS_PER_MEGAPIXEL;
    expect(ms({}) - ms({ refine: 'none' })).toBeCloseTo(wiener, 6);
    expect(ms({ ensemble: '4' }) - ms({ ensemble: '4', refine: 'none' })).toBeCloseTo(wiener, 6);
    expect(ms({ noise: 'gamma' })).toBeCloseTo(ms({ refine: 'none' }), 6);
    expect(ms({ method: 'mid' })).toBeCloseTo(0.262144 * 4 * DENOISE_MS_PER_MEGAPIXEL.mid, 6);
  });
});

describe('levelRangeWarnings', () => {
  const model = { name: 'noise2score-gaussian', version: 'v7' };
  it('says, in the units users give (Gaussian sigma on 0-255), when the level is outside the training range', () => {
    const range: [number, number] = [3.5 / 255, 55 / 255];
    expect(levelRangeWarnings('gaussian', 25 / 255, true, model, range)).toEqual([]);
    const [warning] = levelRangeWarnings('gaussian', 70 / 255, true, model, range);
    expect(warning).toMatch(
      /^noise level 70 \(estimated\) is outside .*noise2score-gaussian@v7.*\(3\.5 to 55\)/,
    );
    expect(levelRangeWarnings('gaussian', 2 / 255, false, model, range)[0]).toMatch(
      /noise level 2 \(given\)/,
    );
    expect(levelRangeWarnings('gaussian', 70 / 255, true, model, undefined)).toEqual([]);
  });
});
