/**
 * POST /v1/denoise mechanics with a small random-weight score network (the trained model's quality is tested in
 * test/denoise/quality.test.ts): raw body, multipart, JSON output, format negotiation, level handling, every error.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildScoreNetwork } from '../../../src/denoise/network.js';
import { initTfjs } from '../../../src/nn/backend.js';
import { fileSystemIO } from '../../../src/nn/fs-io.js';
import { jobResult, makeApp, tinyModelsDir } from '../../helpers.js';

async function makeRepo(): Promise<string> {
  const dir = path.join(tinyModelsDir(), '..', `denoise-repo-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  cpSync(path.join(tinyModelsDir(), 'gaussian-blur'), path.join(dir, 'gaussian-blur'), { recursive: true });
  const { tf } = await initTfjs('wasm');
  const model = buildScoreNetwork(tf, { kind: 'unet', widths: [4, 8, 8], outputScale: 1 }, 1);
  const out = path.join(dir, 'noise2score-gaussian', '1');
  mkdirSync(out, { recursive: true });
  await model.save(fileSystemIO(out));
  writeFileSync(
    path.join(out, 'manifest.json'),
    JSON.stringify({
      name: 'noise2score-gaussian',
      version: '1',
      task: 'denoise-score',
      format: 'layers',
      inputShape: [null, null, null, 1],
      valueRange: [0, 1],
      channels: 1,
      noiseFamily: 'gaussian',
      architecture: { kind: 'unet', widths: [4, 8, 8], outputScale: 1, multiple: 8 },
      description: 'random weights, for endpoint tests',
      parameters: model.countParams(),
      trainingData: 'none (random weights)',
      trainingSteps: 0,
      trainingCommand: 'test/operations/denoise/routes.test.ts',
      createdAt: new Date(0).toISOString(),
    }),
  );
  // The same random network as a Gamma model (level=auto on an all-black image: nothing to estimate from).
  const gamma = path.join(dir, 'noise2score-gamma', '1');
  cpSync(out, gamma, { recursive: true });
  const manifest = JSON.parse(readFileSync(path.join(gamma, 'manifest.json'), 'utf8'));
  writeFileSync(
    path.join(gamma, 'manifest.json'),
    JSON.stringify({ ...manifest, name: 'noise2score-gamma', noiseFamily: 'gamma', levelRange: [50, 150] }),
  );
  model.dispose();
  return dir;
}

async function greyPng(w: number, h: number): Promise<Buffer> {
  const px = Buffer.alloc(w * h);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
  return sharp(px, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toBuffer();
}

describe('POST /v1/denoise', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  let png: Buffer;
  beforeAll(async () => {
    const repo = await makeRepo();
    app = await makeApp({ MODELS_DIR: repo, MAX_IMAGE_PIXELS: 40 * 40 });
    await app.models.settled;
    png = await greyPng(30, 20);
  }, 120_000);
  afterAll(async () => {
    await app.close();
  });
  /** POST the test PNG as a raw body. */
  const postPng = (url: string) =>
    app.inject({ method: 'POST', url, headers: { 'content-type': 'image/png' }, payload: png });

  it("warns when the level is outside the model's training range (manifest levelRange), and still denoises", async () => {
    const post = (query: string) =>
      app.inject({
        method: 'POST',
        url: `/v1/denoise?noise=gamma&${query}`,
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
    const outside = await post('level=400&output=json');
    expect(outside.statusCode, outside.body).toBe(200);
    expect(outside.json().warnings).toHaveLength(1);
    expect(outside.json().warnings[0]).toMatch(/noise level 400 \(given\) is outside .*\(50 to 150\)/);
    expect(outside.headers['x-warning']).toBe(outside.json().warnings[0]);
    const image = await post('level=25');
    expect(image.statusCode).toBe(200);
    expect(image.headers['x-warning']).toMatch(/noise level 25 \(given\)/);
    const inside = await post('level=100&output=json');
    expect(inside.json().warnings).toEqual([]);
    expect(inside.headers['x-warning']).toBeUndefined();
    // No range in the manifest (the Gaussian model here): no warning, whatever the level.
    const gaussian = await postPng('/v1/denoise?noise=gaussian&level=90&output=json');
    expect(gaussian.json().warnings).toEqual([]);
    // GraphQL says the same.
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { denoise(input: { image: $img, noise: GAMMA, level: 400 }) { warnings } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(gql.json().data?.denoise?.warnings, gql.body).toEqual(outside.json().warnings);
  });

  it('answers 422 when level=auto has nothing to read the level from (an all-black image, Gamma noise)', async () => {
    const black = await sharp(Buffer.alloc(32 * 32), { raw: { width: 32, height: 32, channels: 1 } })
      .png()
      .toBuffer();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?noise=gamma&level=auto&output=json',
      headers: { 'content-type': 'image/png' },
      payload: black,
    });
    expect(res.statusCode, res.body).toBe(422);
    expect(res.json().error.code).toBe('TW_UNPROCESSABLE');
    expect(res.json().error.message).toMatch(/cannot be estimated.*Give the level/);
    // With the level given the same image is denoised.
    const given = await app.inject({
      method: 'POST',
      url: '/v1/denoise?noise=gamma&level=100',
      headers: { 'content-type': 'image/png' },
      payload: black,
    });
    expect(given.statusCode, given.body).toBe(200);
  });

  it('denoises a raw PNG body with the level given and answers a PNG of the same size', async () => {
    const res = await postPng('/v1/denoise?noise=gaussian&level=25');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['x-noise-level']).toBe('25');
    expect(res.headers['x-noise-level-estimated']).toBe('false');
    expect(res.headers['x-model']).toBe('noise2score-gaussian@1');
    const meta = await sharp(res.rawPayload).metadata();
    expect([meta.width, meta.height]).toEqual([30, 20]);
  });

  it('accepts multipart, estimates the level with level=auto, and answers JSON', async () => {
    const boundary = '----tweedie';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="output"\r\n\r\njson\r\n`),
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      png,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?level=auto',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload: body,
    });
    expect(res.statusCode, res.body).toBe(200);
    const json = res.json();
    expect(json.levelEstimated).toBe(true);
    expect(json.level).toBeGreaterThan(0);
    expect(json.width).toBe(30);
    expect(json.model).toBe('noise2score-gaussian@1');
    const decoded = await sharp(Buffer.from(json.image, 'base64')).metadata();
    expect(decoded.format).toBe('png');
  });

  it('says how many pixels it took as clipped (0 or 255): JSON, header and GraphQL; none for Gamma', async () => {
    // The test image's bytes (i * 37) % 251 read 0 at i = 0, 251, 502, plus a white pixel added here.
    const px = Buffer.alloc(30 * 20);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
    px[7] = 255;
    const image = await sharp(px, { raw: { width: 30, height: 20, channels: 1 } })
      .png()
      .toBuffer();
    const expected = px.filter((v) => v === 0 || v === 255).length;
    expect(expected).toBe(4);
    const post = (url: string) =>
      app.inject({ method: 'POST', url, headers: { 'content-type': 'image/png' }, payload: image });
    const res = await post('/v1/denoise?level=25&output=json');
    expect(res.statusCode, res.body).toBe(200);
    // Counted over the channels the image is denoised in (the service decodes this grey PNG to 3).
    expect(res.json().clippedPixels).toBe(expected * res.json().channels);
    expect(res.headers['x-clipped-pixels']).toBe(String(res.json().clippedPixels));
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query: 'query($img: String!) { denoise(input: { image: $img, level: 25 }) { image clippedPixels } }',
        variables: { img: image.toString('base64') },
      },
    });
    expect(gql.json().data.denoise.clippedPixels).toBe(res.json().clippedPixels);
    expect(gql.json().data.denoise.image).toBe(res.json().image);
    const gamma = await post('/v1/denoise?noise=gamma&level=100&output=json');
    expect(gamma.statusCode, gamma.body).toBe(200);
    expect(gamma.json().clippedPixels).toBe(0);
  });

  it('averages the score over flips with ensemble=2 and says so', async () => {
    const run = async (ensemble: string) =>
      postPng(`/v1/denoise?level=25&output=json${ensemble ? `&ensemble=${ensemble}` : ''}`);
    const plain = await run('');
    const two = await run('2');
    expect(two.statusCode, two.body).toBe(200);
    expect(two.headers['x-ensemble']).toBe('2');
    expect(plain.headers['x-ensemble']).toBe('1');
    expect(two.json().ensemble).toBe(2);
    // A different (averaged) estimate, not the same bytes.
    expect(two.json().image).not.toBe(plain.json().image);
  });

  it('runs the Wiener stage after Tweedie for Gaussian noise by default; refine=none turns it off; says which', async () => {
    const run = (query: string) => postPng(`/v1/denoise?level=25&output=json${query}`);
    const plain = await run('');
    const wiener = await run('&refine=wiener');
    const none = await run('&refine=none');
    for (const res of [plain, wiener, none]) expect(res.statusCode, res.body).toBe(200);
    expect(plain.headers['x-refine']).toBe('wiener');
    expect(plain.json().refine).toBe('wiener');
    expect(wiener.json().image).toBe(plain.json().image);
    expect(none.headers['x-refine']).toBe('none');
    expect(none.json().refine).toBe('none');
    expect(none.json().image).not.toBe(plain.json().image);
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { denoise(input: { image: $img, level: 25, refine: "none" }) { image refine } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(gql.json().data.denoise).toEqual({ image: none.json().image, refine: 'none' });
    // Gamma: no Wiener stage (and asking for one is refused, below).
    const gamma = await postPng('/v1/denoise?noise=gamma&level=100&output=json');
    expect(gamma.json().refine).toBe('none');
  });

  it('negotiates the output format', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?level=10',
      headers: { 'content-type': 'image/png', accept: 'image/webp' },
      payload: png,
    });
    expect(res.headers['content-type']).toBe('image/webp');
    const bad = await postPng('/v1/denoise?level=10&format=bmp');
    expect(bad.statusCode).toBe(406);
  });

  it('refuses bad input with coded errors', async () => {
    const cases: [string, Record<string, string>, Buffer | string, number, string][] = [
      [
        '/v1/denoise?level=25',
        { 'content-type': 'image/png' },
        Buffer.from('not an image'),
        400,
        'TW_IMAGE_INVALID',
      ],
      [
        '/v1/denoise?level=25',
        { 'content-type': 'image/png' },
        await greyPng(41, 40),
        413,
        'TW_IMAGE_TOO_LARGE',
      ],
      ['/v1/denoise?noise=speckle', { 'content-type': 'image/png' }, png, 400, 'TW_VALIDATION'],
      ['/v1/denoise?level=500', { 'content-type': 'image/png' }, png, 400, 'TW_VALIDATION'],
      ['/v1/denoise?level=25&ensemble=3', { 'content-type': 'image/png' }, png, 400, 'TW_VALIDATION'],
      ['/v1/denoise?level=25&refine=bm3d', { 'content-type': 'image/png' }, png, 400, 'TW_VALIDATION'],
      [
        '/v1/denoise?noise=gamma&level=100&refine=wiener',
        { 'content-type': 'image/png' },
        png,
        400,
        'TW_VALIDATION',
      ],
      ['/v1/denoise?method=mid&refine=wiener', { 'content-type': 'image/png' }, png, 400, 'TW_VALIDATION'],
      [
        '/v1/denoise?noise=poisson&level=0.01',
        { 'content-type': 'image/png' },
        png,
        404,
        'TW_MODEL_NOT_FOUND',
      ],
      ['/v1/denoise', { 'content-type': 'text/plain' }, 'hello', 415, 'TW_UNSUPPORTED_MEDIA_TYPE'],
    ];
    for (const [url, headers, payload, status, code] of cases) {
      const res = await app.inject({ method: 'POST', url, headers, payload });
      expect(res.statusCode, `${url} ${res.body}`).toBe(status);
      expect(res.json().error.code).toBe(code);
    }
  });

  it('GraphQL denoise takes base64 and answers the same as REST', async () => {
    const rest = await postPng('/v1/denoise?level=25&output=json');
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { denoise(input: { image: $img, noise: GAUSSIAN, level: 25 }) { image level levelEstimated model width } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const data = res.json().data.denoise;
    expect(data.image).toBe(rest.json().image);
    expect(data.level).toBe(25);
    expect(data.model).toBe('noise2score-gaussian@1');
    const restTwo = await postPng('/v1/denoise?level=25&ensemble=2&output=json');
    const two = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { denoise(input: { image: $img, level: 25, ensemble: 2 }) { image ensemble } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(two.json().data.denoise.ensemble).toBe(2);
    expect(two.json().data.denoise.image).toBe(restTwo.json().image);
    const bad = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: '{ denoise(input: { image: "AAAA", level: 25 }) { level } }' },
    });
    expect(bad.json().errors[0].extensions.code).toBe('TW_IMAGE_INVALID');
  });

  it('runs as a job with async=true: 202 + Location, then the image from the job result', async () => {
    const result = await jobResult(app, await postPng('/v1/denoise?level=25&async=true'));
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toBe('image/png');
    expect(result.headers['x-noise-level']).toBe('25');
    const sync = await postPng('/v1/denoise?level=25');
    expect(Buffer.compare(result.rawPayload, sync.rawPayload)).toBe(0);

    // output=json: the job's result is the synchronous JSON.
    const fromJob = (
      await jobResult(app, await postPng('/v1/denoise?level=25&output=json&async=true'))
    ).json();
    const direct = (await postPng('/v1/denoise?level=25&output=json')).json();
    const { timings: _a, ...jobRest } = fromJob;
    const { timings: _b, ...directRest } = direct;
    expect(jobRest).toEqual(directRest);
    expect(jobRest.image.length).toBeGreaterThan(100);
  });
});
