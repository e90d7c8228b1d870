/**
 * Admission of images before any pixel is decoded (issue 17, items 4-5 and the image Lows): the decoded-bytes
 * budget (IMAGE_MEMORY_BUDGET_BYTES) on REST and GraphQL, no decoded pixels held on the main thread while a task
 * waits for a worker, the deadline counted from the request's arrival, models of the wrong kind, and malformed
 * multipart bodies.
 */
import { cpSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import { imageBudgetFor } from '../../src/imaging/budget.js';
import { makeApp, repoRoot, tinyModelsDir } from '../helpers.js';

/** A constant grey PNG (a few KB even when large). */
function greyPng(w: number, h: number): Promise<Buffer> {
  return sharp(Buffer.alloc(w * h, 120), { raw: { width: w, height: h, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
}

describe('image admission', () => {
  let app: FastifyInstance;
  let small: Buffer;
  let medium: Buffer;
  // 512x512 grey: 1 MiB decoded (float32); the budget holds two of them.
  const BUDGET = 2.5 * 1024 * 1024;

  beforeAll(async () => {
    const models = tinyModelsDir();
    cpSync(path.join(repoRoot, 'models', 'noise2score-gaussian'), path.join(models, 'noise2score-gaussian'), {
      recursive: true,
    });
    app = await makeApp({
      MODELS_DIR: models,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      IMAGE_MEMORY_BUDGET_BYTES: BUDGET,
    });
    await app.models.settled;
    small = await greyPng(16, 16);
    medium = await greyPng(512, 512);
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  /** Occupies the only worker for `ms`. */
  const busy = (ms: number) => app.compute.pool.run('test.busy', { ms });
  const denoise = (png: Buffer, query = '') =>
    app.inject({
      method: 'POST',
      url: `/v1/denoise?noise=gaussian&level=25${query}`,
      headers: { 'content-type': 'image/png' },
      payload: png,
    });

  it('refuses images beyond the decoded-bytes budget with 503 TW_QUEUE_FULL before decoding, on REST and GraphQL', async () => {
    const budget = imageBudgetFor(app.compute.pool, testConfig({ IMAGE_MEMORY_BUDGET_BYTES: BUDGET }));
    const running = busy(1500);
    // Four 1 MiB images against a 2.5 MiB budget: two are admitted (and wait for the worker), two are refused.
    // async=false: answered now (or refused), never turned into a job for its estimated cost.
    const rest = await Promise.all([0, 1, 2, 3].map(() => denoise(medium, '&timeoutMs=800&async=false')));
    const codes = rest.map((r) => r.json().error?.code);
    expect(codes.filter((c) => c === 'TW_QUEUE_FULL')).toHaveLength(2);
    expect(codes.filter((c) => c === 'TW_DEADLINE_EXCEEDED')).toHaveLength(2);
    const refused = rest.find((r) => r.statusCode === 503);
    expect(refused?.headers['retry-after']).toBeDefined();
    expect(refused?.json().error.details).toMatchObject({ reason: 'image-memory', budgetBytes: BUDGET });

    // GraphQL: four aliases sharing one image variable are four images (async: false, as above).
    const aliases = [0, 1, 2, 3].map((i) => `d${i}: denoise(input: $input) { width }`).join(' ');
    const gql = app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query: `query ($input: DenoiseInput!) { ${aliases} }`,
        variables: {
          input: {
            image: medium.toString('base64'),
            noise: 'GAUSSIAN',
            level: 25,
            timeoutMs: 600,
            async: false,
          },
        },
      },
    });
    const errors = (await gql).json().errors as { extensions: { code: string } }[];
    // (Non-null fields: the operation fails at its first error, an alias beyond the budget.)
    expect(errors.map((e) => e.extensions.code)).toContain('TW_QUEUE_FULL');
    await running;
    // Every reservation was given back.
    expect(budget.inUse).toBe(0);
    const ok = await denoise(small);
    expect(ok.statusCode, ok.body).toBe(200);
  }, 30_000);

  it('refuses an image that alone exceeds the budget with 413 (it could never be admitted)', async () => {
    const res = await denoise(await greyPng(1024, 1024));
    expect(res.statusCode, res.body).toBe(413);
    expect(res.json().error.code).toBe('TW_IMAGE_TOO_LARGE');
    expect(res.json().error.details).toMatchObject({ decodedBytes: 1024 * 1024 * 4, budgetBytes: BUDGET });
  });

  it('counts the deadline from the request arrival: a slow body uses it up', async () => {
    // The body takes 600 ms to arrive; the deadline is 300 ms: nothing may run after it.
    const slowBody = () =>
      new Readable({
        read() {
          setTimeout(() => {
            this.push(small);
            this.push(null);
          }, 600);
        },
      });
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?noise=gaussian&level=25&timeoutMs=300',
      headers: { 'content-type': 'image/png' },
      payload: slowBody(),
    });
    expect(res.statusCode, res.body).toBe(504);
    expect(res.json().error.code).toBe('TW_DEADLINE_EXCEEDED');
  });

  it('refuses a model of the wrong kind with 422 on denoise (sync and async), restore and detect', async () => {
    for (const url of [
      '/v1/denoise?model=gaussian-blur&level=25',
      '/v1/denoise?model=gaussian-blur&level=25&async=true',
      '/v1/denoise?model=noise2score-gaussian&method=mid',
      '/v1/restore?task=denoise&steps=2&model=gaussian-blur',
      '/v1/restore?task=denoise&steps=2&model=noise2score-gaussian',
      '/v1/detect/adversarial?model=gaussian-blur',
    ]) {
      const res = await app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'image/png' },
        payload: small,
      });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(422);
      expect(res.json().error.code).toBe('TW_UNPROCESSABLE');
      expect(res.json().error.details.expected).toBeInstanceOf(Array);
    }
  });

  it('answers a malformed multipart body with 400 TW_VALIDATION on every route that reads multipart', async () => {
    const b = '----tweedie-bad';
    const bodies = [
      // Truncated: the file part never ends.
      `--${b}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nabc`,
      // No closing boundary after a field.
      `--${b}\r\nContent-Disposition: form-data; name="noise"\r\n\r\ngaussian`,
    ];
    for (const url of ['/v1/denoise', '/v1/restore?task=denoise', '/v1/detect/adversarial']) {
      for (const payload of bodies) {
        const res = await app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': `multipart/form-data; boundary=${b}` },
          payload,
        });
        expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
        expect(res.json().error.code).toBe('TW_VALIDATION');
      }
    }
  });
});

describe('no decoded pixels on the main thread', () => {
  let app: FastifyInstance;
  let big: Buffer;

  beforeAll(async () => {
    const models = tinyModelsDir();
    cpSync(path.join(repoRoot, 'models', 'noise2score-gaussian'), path.join(models, 'noise2score-gaussian'), {
      recursive: true,
    });
    app = await makeApp({ MODELS_DIR: models, RATE_LIMIT_MAX: 0, PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0 });
    await app.models.settled;
    // 4096 x 4096 grey (MAX_IMAGE_PIXELS): ~17 KB as a PNG, 64 MiB decoded as float32.
    big = await greyPng(4096, 4096);
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('holds only the encoded bytes of requests waiting for a worker, and answers them at their deadline', async () => {
    const running = app.compute.pool.run('test.busy', { ms: 2500 });
    const base = process.memoryUsage().arrayBuffers;
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }, 5);
    const timeoutMs = 1200;
    const t0 = Date.now();
    const answers = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const res = await app.inject({
          method: 'POST',
          // async=false: answered now (or 504), never turned into a job for its estimated cost.
          url: `/v1/denoise?noise=gaussian&level=25&timeoutMs=${timeoutMs}&async=false`,
          headers: { 'content-type': 'image/png' },
          payload: big,
        });
        return { status: res.statusCode, ms: Date.now() - t0 };
      }),
    );
    clearInterval(sampler);
    await running;
    expect(answers.map((a) => a.status)).toEqual([504, 504, 504, 504]);
    // Decoded on the main thread, the four would hold 4 x (16 MiB raw + 64 MiB float32) while they wait.
    expect(peak - base).toBeLessThan(32 * 1024 * 1024);
    for (const a of answers) expect(a.ms).toBeLessThan(timeoutMs + 400);
  }, 30_000);
});
