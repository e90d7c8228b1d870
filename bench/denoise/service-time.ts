/**
 * Wall time of POST /v1/denoise through the real service over HTTP (bench:denoise-time's "through the service"
 * rows, bench/denoise/split-threshold.ts): an app on 127.0.0.1 with `workers` compute workers on wasm, only the
 * model asked for in its repository, SPLIT_MIN_PIXELS and SPLIT_MAX_LOAD as given; a grey 8-bit PNG sent with the
 * level given.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { buildApp } from '../../src/app.js';
import { configSchema, testConfig } from '../../src/config.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { REPO_ROOT } from './inputs.js';

export interface DenoiseService {
  url: string;
  workers: number;
  splitMinPixels: number;
  splitMaxLoad: number;
  /** Helper tasks the app's pool has lent so far (its workers borrowed by a running request). */
  lent(): number;
  close(): Promise<void>;
}

/** The service with one model (its latest version), listening on a free port; its workers warmed up. */
export async function startDenoiseService(opts: {
  model: string;
  workers: number;
  splitMinPixels: number;
  /** SPLIT_MAX_LOAD; default: the configuration's default. */
  splitMaxLoad?: number;
}): Promise<DenoiseService> {
  const splitMaxLoad = opts.splitMaxLoad ?? configSchema.parse({}).SPLIT_MAX_LOAD;
  const entry = resolveModel(await scanModelRepository(path.join(REPO_ROOT, 'models')), opts.model);
  if (!entry) throw new Error(`no model ${opts.model}`);
  const repo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-service-time-'));
  cpSync(entry.dir, path.join(repo, entry.name, entry.version), { recursive: true });
  const app = await buildApp(
    testConfig({
      WORKERS: opts.workers,
      MODELS_DIR: repo,
      TFJS_BACKEND: 'wasm',
      SPLIT_MIN_PIXELS: opts.splitMinPixels,
      SPLIT_MAX_LOAD: splitMaxLoad,
      REQUEST_TIMEOUT_MS: 600_000,
      REQUEST_TIMEOUT_MAX_MS: 600_000,
      JOBS_AUTO_MAX_COST_MS: 600_000,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    }),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  await app.models.settled;
  return {
    url: `http://127.0.0.1:${address.port}`,
    workers: opts.workers,
    splitMinPixels: opts.splitMinPixels,
    splitMaxLoad,
    lent: () => app.compute.pool.stats().lent,
    close: async () => {
      await app.close();
      rmSync(repo, { recursive: true, force: true });
    },
  };
}

/** A grey PNG (one channel: sharp writes sRGB unless told) of a [0, 1] image already on 8-bit levels. */
export function greyPng(y: Float32Array, width: number, height: number): Promise<Buffer> {
  const px = Buffer.alloc(width * height);
  for (let i = 0; i < px.length; i++) px[i] = Math.round(Math.min(1, Math.max(0, y[i])) * 255);
  return sharp(px, { raw: { width, height, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
}

/** Wall seconds of one denoise request (answer read in full); `query` e.g. 'noise=gaussian&level=25'. */
export async function timeServiceDenoise(
  service: DenoiseService,
  png: Buffer,
  query: string,
): Promise<number> {
  const t = performance.now();
  const res = await fetch(`${service.url}/v1/denoise?${query}&async=false&timeoutMs=600000`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
  });
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`denoise answered ${res.status}: ${Buffer.from(body).toString()}`);
  return (performance.now() - t) / 1000;
}

/**
 * Warm every worker: rounds of `workers` requests at once (each worker loads the model), then one alone, which
 * also checks that the image is denoised as one grey plane.
 */
export async function warmService(service: DenoiseService, png: Buffer, query: string): Promise<void> {
  for (let round = 0; round < 2; round++) {
    await Promise.all(Array.from({ length: service.workers }, () => timeServiceDenoise(service, png, query)));
  }
  const res = await fetch(`${service.url}/v1/denoise?${query}&output=json&async=false&timeoutMs=600000`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
  });
  const answer = (await res.json()) as { channels?: number };
  if (answer.channels !== 1) throw new Error(`the service denoised ${answer.channels} channels, not 1`);
}
