/**
 * POST /v1/restore and /v1/inpaint mechanics with a small random-weight eps U-Net (the trained prior's quality is
 * the benchmark's business): raw body, multipart with a mask, JSON output, every task, every error, determinism,
 * GraphQL and the job path.
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUnet, type UnetArchitecture, unetMultiple } from '../../../src/diffusion/unet.js';
import { initTfjs } from '../../../src/nn/backend.js';
import { fileSystemIO } from '../../../src/nn/fs-io.js';
import { jobResult, makeApp, multipartForm, tinyModelsDir } from '../../helpers.js';

const TINY: UnetArchitecture = {
  kind: 'unet-eps',
  channels: [4, 8, 8],
  resBlocks: 1,
  timeEmbedding: 8,
  groups: 2,
  spaceToDepth: 2,
  normTwicePerBlock: false,
};

function manifest(name: string, parameters: number) {
  return {
    name,
    version: '1',
    task: 'diffusion-eps',
    format: 'layers',
    inputShape: [null, null, null, 1],
    valueRange: [-1, 1],
    channels: 1,
    architecture: { ...TINY, multiple: unetMultiple(TINY) },
    description: 'random weights, for endpoint tests',
    parameters,
    trainingData: 'none (random weights)',
    trainingSteps: 0,
    trainingCommand: 'test/operations/restore/routes.test.ts',
    createdAt: new Date(0).toISOString(),
    extra: {
      schedule: { kind: 'linear', timesteps: 1000, betaStart: 1e-4, betaEnd: 0.02 },
      // The model's measured RED-Diff settings, which the service uses when a request does not give its own.
      // `holes`: the settings for masks whose hole radius reaches minRadius (absent fields: the general ones),
      // optimised on a window around the holes with `windowMargin` pixels of context, the mean of `samples` runs.
      redDiff: {
        init: 'smooth',
        tMax: 300,
        lambda: 0.05,
        lr: 0.04,
        holes: {
          minRadius: 3,
          tMax: 500,
          lr: 0.02,
          windowMargin: 2,
          samples: 2,
          coarse: { steps: 1, tMax: 400, fineTMax: 50 },
        },
      },
    },
  };
}

async function makeRepo(): Promise<string> {
  const dir = path.join(tinyModelsDir(), '..', `restore-repo-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  cpSync(path.join(tinyModelsDir(), 'gaussian-blur'), path.join(dir, 'gaussian-blur'), { recursive: true });
  const { tf } = await initTfjs('wasm');
  const model = buildUnet(tf, TINY);
  // The final conv starts at zero (eps_theta = 0); give it weights so the prior actually moves the estimate.
  const last = model.layers.filter((l) => l.getClassName() === 'Conv2D').at(-1)!;
  last.setWeights(last.getWeights().map((w) => tf.randomNormal(w.shape, 0, 0.1, 'float32', 3)));
  const out = path.join(dir, 'ddpm-fashion-mnist', '1');
  mkdirSync(out, { recursive: true });
  await model.save(fileSystemIO(out));
  writeFileSync(
    path.join(out, 'manifest.json'),
    JSON.stringify(manifest('ddpm-fashion-mnist', model.countParams())),
  );
  // A model that fails to load (its weights file is missing): the registry marks it failed, requests get 503.
  const broken = path.join(dir, 'ddpm-broken', '1');
  mkdirSync(broken, { recursive: true });
  cpSync(path.join(out, 'model.json'), path.join(broken, 'model.json'));
  writeFileSync(path.join(broken, 'manifest.json'), JSON.stringify(manifest('ddpm-broken', 0)));
  model.dispose();
  return dir;
}

/** A smooth grey test image (side not a multiple of 8, so padding is exercised). */
async function greyPng(w: number, h: number): Promise<Buffer> {
  const px = Buffer.alloc(w * h);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) px[r * w + c] = 40 + ((r * 9 + c * 5) % 180);
  return sharp(px, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toBuffer();
}

/** White (missing) where `missing(r, c)`, black elsewhere. */
async function maskPng(w: number, h: number, missing: (r: number, c: number) => boolean): Promise<Buffer> {
  const px = Buffer.alloc(w * h);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) px[r * w + c] = missing(r, c) ? 255 : 0;
  return sharp(px, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toBuffer();
}

function multipart(files: Record<string, Buffer>, fields: Record<string, string> = {}) {
  return multipartForm(
    Object.entries(files).map(([name, bytes]) => [name, `${name}.png`, bytes]),
    fields,
  );
}

async function pixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('POST /v1/restore', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  let png: Buffer;
  const W = 20;
  const H = 14;
  const post = (
    url: string,
    payload: Buffer,
    headers: Record<string, string> = { 'content-type': 'image/png' },
  ) => app.inject({ method: 'POST', url, headers, payload });

  beforeAll(async () => {
    const repo = await makeRepo();
    app = await makeApp({ MODELS_DIR: repo, MAX_IMAGE_PIXELS: 64 * 64 });
    await app.models.settled;
    png = await greyPng(W, H);
  }, 120_000);
  afterAll(async () => {
    await app.close();
  });

  it('inpaints a raw PNG body with a random mask and answers a PNG of the same size', async () => {
    const res = await post('/v1/restore?task=inpaint&maskRatio=0.5&seed=3&steps=8', png);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['x-model']).toBe('ddpm-fashion-mnist@1');
    expect(res.headers['x-steps']).toBe('8');
    expect(Number(res.headers['x-residual'])).toBeGreaterThan(0);
    const out = await pixels(res.rawPayload);
    expect([out.width, out.height]).toEqual([W, H]);
  });

  it('takes an uploaded mask in multipart; lambda = 0 keeps the observed pixels exactly (padding and crop line up)', async () => {
    const inBox = (r: number, c: number) => r >= 4 && r < 9 && c >= 6 && c < 13;
    const mask = await maskPng(W, H, inBox);
    const run = (lambda: string) => {
      const { headers, payload } = multipart(
        { image: png, mask },
        { output: 'json', steps: '6', lambda, lr: '0.2', seed: '9', init: 'pinv' },
      );
      return post('/v1/restore', payload, headers);
    };
    const res = await run('0');
    expect(res.statusCode, res.body).toBe(200);
    const json = res.json();
    expect(json.task).toBe('inpaint');
    expect([json.width, json.height]).toEqual([W, H]);
    expect(json.residual).toBeLessThan(1e-5);
    expect(json.psnr).toBeNull(); // not simulated: no reference to compare with
    expect(json.padding).toEqual({ mode: 'reflect', top: 0, left: 0, bottom: 2, right: 4 }); // 14 -> 16, 20 -> 24
    expect(json.operator).toMatchObject({ kind: 'mask', missing: 5 * 7 });
    expect(json.params).toMatchObject({ steps: 6, lambda: 0, lr: 0.2, seed: 9 });
    expect(json.timings['reddiff.msPerStep']).toBeGreaterThan(0);
    const input = await pixels(png);
    const out = await pixels(Buffer.from(json.image, 'base64'));
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        const i = r * W + c;
        // Missing pixels stay at H^+ y = 0 on [-1, 1], i.e. mid-grey, without the prior.
        if (inBox(r, c))
          expect(
            Math.abs(out.data[i] - 127.5),
            `${r},${c} ${out.data[i]} ${input.data[i]} ${out.data.length}`,
          ).toBeLessThanOrEqual(0.5);
        else expect(Math.abs(out.data[i] - input.data[i])).toBeLessThanOrEqual(1);
      }
    // With the prior on, the holes are filled with something else than mid-grey.
    const filled = await pixels(Buffer.from((await run('0.5')).json().image, 'base64'));
    let moved = 0;
    for (let i = 0; i < filled.data.length; i++)
      if (inBox(Math.floor(i / W), i % W)) moved += Math.abs(filled.data[i] - 127.5);
    expect(moved / 35).toBeGreaterThan(2);
  });

  it('serves /v1/inpaint as task=inpaint (boxes), with a trace strip', async () => {
    const res = await post('/v1/inpaint?box=2,2,5,4;10,8,3,3&steps=6&trace=3&output=json', png);
    expect(res.statusCode, res.body).toBe(200);
    const json = res.json();
    expect(json.task).toBe('inpaint');
    expect(json.operator.missing).toBe(20 + 9);
    expect(json.trace.steps).toEqual([2, 4, 6]);
    const strip = await sharp(Buffer.from(json.trace.image, 'base64')).metadata();
    expect([strip.width, strip.height]).toEqual([3 * W, H]);
    const wrong = await post('/v1/inpaint?task=deblur&box=1,1,2,2', png);
    expect(wrong.statusCode).toBe(400);
  });

  it('super-resolves (observed: output factor x larger), deblurs and denoises; simulate reports PSNR', async () => {
    const sr = await post('/v1/restore?task=super-resolution&factor=2&kernel=bicubic&steps=4', png);
    expect(sr.statusCode, sr.body).toBe(200);
    const up = await pixels(sr.rawPayload);
    expect([up.width, up.height]).toEqual([2 * W, 2 * H]);
    // Simulated x4 average-pool SR without the prior: H H^+ = I, so the data term has zero gradient at H^+ y and the
    // estimate stays there: its PSNR equals the pseudo-inverse's (and both compare against the input).
    const sim = await post(
      '/v1/restore?task=super-resolution&factor=4&simulate=true&lambda=0&steps=4&init=pinv&output=json',
      png,
    );
    expect(sim.statusCode, sim.body).toBe(200);
    expect([sim.json().width, sim.json().height]).toEqual([W, H]);
    expect(sim.json().pseudoInversePsnr).toBeGreaterThan(15);
    expect(sim.json().psnr).toBeCloseTo(sim.json().pseudoInversePsnr, 1);
    // The model's smooth start (back-projected bicubic) is closer to the image than nearest up-sampling.
    const smooth = await post(
      '/v1/restore?task=super-resolution&factor=4&simulate=true&lambda=0&steps=4&output=json',
      png,
    );
    expect(smooth.statusCode, smooth.body).toBe(200);
    expect(smooth.json().psnr).toBeGreaterThan(sim.json().pseudoInversePsnr + 1);
    const blur = await post(
      '/v1/restore?task=deblur&blur=gaussian&size=5&width=1.5&simulate=true&steps=4&output=json',
      png,
    );
    expect(blur.statusCode, blur.body).toBe(200);
    expect(blur.json().operator).toMatchObject({ kind: 'blur', kernelSize: 5, kernel: 'gaussian' });
    expect(blur.json().psnr).toBeGreaterThan(0);
    const noisy = await post('/v1/restore?task=denoise&sigmaY=0.1&simulate=true&steps=4&output=json', png);
    expect(noisy.statusCode, noisy.body).toBe(200);
    expect(noisy.json().operator.kind).toBe('identity');
    expect(noisy.json().params.sigmaY).toBe(0.1);
  });

  it("uses the model's measured RED-Diff settings unless the request gives its own", async () => {
    const tuned = await post('/v1/restore?maskRatio=0.5&steps=4&output=json', png);
    expect(tuned.statusCode, tuned.body).toBe(200);
    expect(tuned.json().params).toMatchObject({ init: 'smooth', tMax: 300, lambda: 0.05, lr: 0.04 });
    const own = await post(
      '/v1/restore?maskRatio=0.5&steps=4&init=pinv&tMax=999&lambda=0.2&lr=0.1&output=json',
      png,
    );
    expect(own.statusCode, own.body).toBe(200);
    expect(own.json().params).toMatchObject({ init: 'pinv', tMax: 999, lambda: 0.2, lr: 0.1 });
    expect(own.json().image).not.toBe(tuned.json().image);
  });

  it("uses the manifest's hole settings for a mask with a deep hole, whatever the route", async () => {
    const scattered = await post('/v1/restore?maskRatio=0.5&steps=2&output=json', png);
    expect(scattered.statusCode, scattered.body).toBe(200);
    expect(scattered.json().params).toMatchObject({ settings: 'general', tMax: 300, lr: 0.04 });
    expect(scattered.json().params.holeRadius).toBeLessThan(3);
    // An 8x6 box: radius 3.
    const box = await post('/v1/inpaint?box=4,3,8,6&steps=2&output=json', png);
    expect(box.statusCode, box.body).toBe(200);
    expect(box.json().params).toMatchObject({
      settings: 'holes',
      holeRadius: 3,
      init: 'smooth',
      tMax: 50,
      lambda: 0.05,
      lr: 0.02,
    });
    // Optimised on a window around the box (rows 3..8, columns 4..11, 2 pixels of context, sides multiples of the
    // U-Net's 8, inside the image padded to 24x16): outside it the answer is the upload itself.
    expect(box.json().params.window).toEqual({ top: 0, left: 0, height: 16, width: 16 });
    expect(scattered.json().params.window).toBeUndefined();
    // After one step on the window at half resolution (8x8), from t 400.
    expect(box.json().params.coarse).toMatchObject({ steps: 1, tMax: 400, lr: 0.02 });
    expect(scattered.json().params.coarse).toBeUndefined();
    // A request's own tMax is the full-resolution run's.
    const own = await post('/v1/inpaint?box=4,3,8,6&steps=2&tMax=300&output=json', png);
    expect(own.statusCode, own.body).toBe(200);
    expect(own.json().params).toMatchObject({ tMax: 300, coarse: { steps: 1, tMax: 400 } });
    expect(box.json().params.samples).toBe(2);
    expect(scattered.json().params.samples).toBeUndefined();
    // A request's own number of runs wins, inside the hole's settings or not.
    const one = await post('/v1/inpaint?box=4,3,8,6&steps=2&samples=1&output=json', png);
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json().params).toMatchObject({ settings: 'holes', window: box.json().params.window });
    expect(one.json().params.samples).toBeUndefined();
    expect(one.json().image).not.toBe(box.json().image);
    const three = await post('/v1/restore?maskRatio=0.5&steps=2&samples=3&output=json', png);
    expect(three.statusCode, three.body).toBe(200);
    expect(three.json().params).toMatchObject({ settings: 'general', samples: 3 });
    // GraphQL takes it too, validated the same way.
    const gql = (samples: number) =>
      app.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: `query($img: String!) { restore(input: { image: $img, maskRatio: 0.5, steps: 2, samples: ${samples} }) { image params } }`,
          variables: { img: png.toString('base64') },
        },
      });
    const viaGql = await gql(3);
    expect(viaGql.json().data?.restore?.image, viaGql.body).toBe(three.json().image);
    expect((await gql(9)).json().errors?.[0]?.extensions?.code).toBe('TW_VALIDATION');
    const input = await pixels(png);
    const output = await pixels(Buffer.from(box.json().image, 'base64'));
    let outside = 0;
    for (let r = 0; r < H; r++)
      for (let c = 16; c < W; c++) {
        expect(output.data[r * W + c]).toBe(input.data[r * W + c]);
        outside++;
      }
    expect(outside).toBe(4 * H);
    // An uploaded mask goes the same way; a request's own value still wins over the hole settings.
    const mask = await maskPng(W, H, (r, c) => r >= 3 && r < 11 && c >= 5 && c < 13);
    const form = multipart({ image: png, mask }, { output: 'json', steps: '2', tMax: '100' });
    const uploaded = await post('/v1/restore', form.payload, form.headers);
    expect(uploaded.statusCode, uploaded.body).toBe(200);
    expect(uploaded.json().params).toMatchObject({ settings: 'holes', holeRadius: 4, tMax: 100, lr: 0.02 });
    // Super-resolution has no mask: the general settings.
    const sr = await post('/v1/restore?task=super-resolution&steps=2&output=json', png);
    expect(sr.statusCode, sr.body).toBe(200);
    expect(sr.json().params).toMatchObject({ settings: 'general', tMax: 300 });
    expect(sr.json().params.holeRadius).toBeUndefined();
  });

  it('is deterministic: identical requests give identical bytes, another seed does not', async () => {
    const url = '/v1/restore?maskRatio=0.6&steps=5&seed=11';
    const a = await post(url, png);
    const b = await post(url, png);
    expect(a.statusCode).toBe(200);
    expect(Buffer.compare(a.rawPayload, b.rawPayload)).toBe(0);
    const c = await post('/v1/restore?maskRatio=0.6&steps=5&seed=12', png);
    expect(Buffer.compare(a.rawPayload, c.rawPayload)).not.toBe(0);
  });

  it('refuses bad input with coded errors', async () => {
    const smallMask = await maskPng(W - 1, H, () => true);
    const emptyMask = await maskPng(W, H, () => false);
    const cases: [string, { headers: Record<string, string>; payload: Buffer }, number, string, RegExp?][] = [
      ['/v1/restore', multipart({ image: png, mask: smallMask }), 422, 'TW_UNPROCESSABLE', /19x14.*20x14/],
      [
        '/v1/restore',
        multipart({ image: png, mask: emptyMask }),
        422,
        'TW_UNPROCESSABLE',
        /nothing to inpaint/,
      ],
      [
        '/v1/restore?maskRatio=0',
        { headers: { 'content-type': 'image/png' }, payload: png },
        422,
        'TW_UNPROCESSABLE',
        /no pixel/,
      ],
      [
        '/v1/restore',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
        /needs a mask/,
      ],
      [
        '/v1/restore?maskRatio=0.5&steps=1001',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
      ],
      [
        '/v1/restore?maskRatio=0.5&tMax=1000',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
        /tMax/,
      ],
      [
        '/v1/restore?maskRatio=0.5&samples=0',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
        /samples/,
      ],
      [
        '/v1/restore?maskRatio=0.5&samples=9',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
        /samples/,
      ],
      [
        '/v1/restore?maskRatio=0.5&init=zeros',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
        /init/,
      ],
      [
        '/v1/restore?task=super-resolution&factor=3',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
      ],
      [
        '/v1/restore?task=deblur&size=4',
        { headers: { 'content-type': 'image/png' }, payload: png },
        400,
        'TW_VALIDATION',
      ],
      [
        '/v1/restore?maskRatio=0.5&model=nope',
        { headers: { 'content-type': 'image/png' }, payload: png },
        404,
        'TW_MODEL_NOT_FOUND',
      ],
      // No model named: larger than 32x32 defaults to the natural-image prior, which this repository lacks.
      [
        '/v1/restore?maskRatio=0.5',
        { headers: { 'content-type': 'image/png' }, payload: await greyPng(40, 40) },
        404,
        'TW_MODEL_NOT_FOUND',
        /ddpm-natural-grey/,
      ],
      // the same refusal when a job is asked for, not a 202 for a job that can only fail
      [
        '/v1/restore?async=true&maskRatio=0.5',
        { headers: { 'content-type': 'image/png' }, payload: await greyPng(40, 40) },
        404,
        'TW_MODEL_NOT_FOUND',
        /ddpm-natural-grey/,
      ],
      [
        '/v1/restore?maskRatio=0.5&model=ddpm-broken',
        { headers: { 'content-type': 'image/png' }, payload: png },
        503,
        'TW_MODEL_NOT_READY',
      ],
      [
        '/v1/restore?maskRatio=0.5',
        { headers: { 'content-type': 'image/png' }, payload: Buffer.from('not an image') },
        400,
        'TW_IMAGE_INVALID',
      ],
      [
        '/v1/restore?task=super-resolution&factor=4',
        { headers: { 'content-type': 'image/png' }, payload: await greyPng(20, 20) },
        413,
        'TW_IMAGE_TOO_LARGE',
      ],
    ];
    for (const [url, { headers, payload }, status, code, message] of cases) {
      const res = await post(url, payload, headers);
      expect(res.statusCode, `${url} ${res.body}`).toBe(status);
      expect(res.json().error.code, url).toBe(code);
      if (message) expect(res.json().error.message, url).toMatch(message);
    }
  });

  it('documents both routes in the OpenAPI description', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const paths = Object.keys(spec.paths);
    expect(paths.some((p) => p.startsWith('/v1/restore'))).toBe(true);
    expect(paths.some((p) => p.startsWith('/v1/inpaint'))).toBe(true);
    const restore = spec.paths[paths.find((p) => p.startsWith('/v1/restore')) as string].post;
    expect(restore.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining([
        'task',
        'maskRatio',
        'box',
        'factor',
        'steps',
        'lambda',
        'lr',
        'seed',
        'simulate',
      ]),
    );
  });

  it('GraphQL restore takes base64 and answers the same image as REST', async () => {
    const rest = await post('/v1/restore?maskRatio=0.5&steps=4&seed=2&output=json', png);
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { restore(input: { image: $img, task: INPAINT, maskRatio: 0.5, steps: 4, seed: 2 }) { image residual model width height jobId } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const data = res.json().data.restore;
    expect(data.image).toBe(rest.json().image);
    expect(data.residual).toBe(rest.json().residual);
    expect(data.model).toBe('ddpm-fashion-mnist@1');
    expect(data.jobId).toBeNull();
    const mask = (await maskPng(W, H, () => false)).toString('base64');
    const bad = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!, $mask: String) { restore(input: { image: $img, mask: $mask }) { residual } }',
        variables: { img: png.toString('base64'), mask },
      },
    });
    expect(bad.json().errors[0].extensions.code).toBe('TW_UNPROCESSABLE');
  });

  it('runs as a job with async=true: 202 + Location, progress, then the same image as the synchronous call', async () => {
    const url = '/v1/restore?maskRatio=0.5&steps=6&seed=4';
    const result = await jobResult(app, await post(`${url}&async=true`, png));
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toBe('image/png');
    expect(result.headers['x-steps']).toBe('6');
    const sync = await post(url, png);
    expect(Buffer.compare(result.rawPayload, sync.rawPayload)).toBe(0);

    // output=json with a trace: the job's result is the synchronous JSON, trace strip included.
    const jsonUrl = `${url}&output=json&trace=3`;
    const fromJob = (await jobResult(app, await post(`${jsonUrl}&async=true`, png))).json();
    const direct = (await post(jsonUrl, png)).json();
    expect(fromJob.trace.steps).toHaveLength(3);
    expect(fromJob.trace).toEqual(direct.trace);
    expect(fromJob.image).toBe(direct.image);
    const { timings: _a, ...jobRest } = fromJob;
    const { timings: _b, ...directRest } = direct;
    expect(jobRest).toEqual(directRest);
  });

  it('becomes a job by itself when the estimated cost exceeds the deadline; GraphQL async answers a job id', async () => {
    const res = await post('/v1/restore?maskRatio=0.5&steps=1000&timeoutMs=100', png);
    expect(res.statusCode, res.body).toBe(202);
    expect(res.headers['x-async-reason']).toMatch(/deadline/);
    const cancel = await app.inject({ method: 'DELETE', url: res.headers.location as string });
    expect(cancel.statusCode).toBeLessThan(300);
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { restore(input: { image: $img, maskRatio: 0.5, steps: 3, async: true }) { jobId image } }',
        variables: { img: png.toString('base64') },
      },
    });
    const data = gql.json().data.restore;
    expect(data.jobId, gql.body).toMatch(/\S+/);
    expect(data.image).toBeNull();
    const view = await app.inject({ method: 'GET', url: `/v1/jobs/${data.jobId}` });
    expect(view.statusCode).toBe(200);
    // GraphQL without async: a job by itself too when the estimated cost exceeds the deadline, as over REST.
    const auto = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { restore(input: { image: $img, maskRatio: 0.5, steps: 1000, timeoutMs: 100 }) { jobId image } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(auto.headers['x-async-reason'], auto.body).toMatch(/deadline/);
    const autoJob = auto.json().data.restore.jobId;
    expect(autoJob, auto.body).toMatch(/\S+/);
    const cancelled = await app.inject({ method: 'DELETE', url: `/v1/jobs/${autoJob}` });
    expect(cancelled.statusCode).toBeLessThan(300);
  });
});
