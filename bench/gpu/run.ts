/**
 * `npm run bench:gpu`: TF.js wasm against TF.js WebGPU in one run, on this machine, and the section between
 * <!-- gpu:begin --> and <!-- gpu:end --> of bench/RESULTS.md (naming the adapter).
 *
 * Per backend, in this process (one thread): Noise2Score network at 256/512/1024 px (one call, with the time
 * split into upload, network and read-back) and the whole denoising of a grey image of that size; a batch of 8
 * 512x512 windows against 8 single calls; MID K=8 on a 512x512 RGB image; RED-Diff 100 steps at 256x256
 * (inpainting of a centred box, ddpm-natural-grey); EPS-AD scores of a batch of 64 28x28 images (20 timesteps,
 * the route's default) with the detector's MMD; tf.memory() before and after 1000 network calls. Then the real
 * HTTP server (buildApp, listening on a port, WORKERS workers on that backend) answering POST /v1/denoise with a
 * 512x512 PNG, PNG out, at concurrency 1, 8 and 64: p50, p95, images/s, and the PNG decode and encode times of
 * that image measured here (sharp), to split the request's time into decode, upload, network, read-back, encode.
 *
 * Every figure is a median of --reps runs after one warm-up run (shader compilation, buffer pools).
 * --quick: tiny sizes (64/128 px, K=2, 5 RED-Diff steps at 32x32, 4 EPS-AD images, concurrency 1/2/4) for a
 * software adapter (lavapipe) or CI. --backends wasm,webgpu; --no-write prints instead of writing RESULTS.md;
 * results also go to bench/out/gpu/results.json. On a GPU machine without Node: bench/gpu/run-on-device.sh.
 *
 * The bundle made by bench/gpu/pack.sh is also the compute pool's worker file (its default export is the worker's
 * task function; see workerEntry in src/compute/pool.ts), so the HTTP server's workers run from the same file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';

export { default } from '../../src/compute/worker.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};

async function timed(reps: number, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

function noisyGrey(width: number, height: number, channels = 1, seed = 1): Float32Array {
  const out = new Float32Array(width * height * channels);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const p = Math.floor(i / channels);
    const clean = 0.5 + 0.35 * Math.sin(Math.floor(p / width) / 9) * Math.cos((p % width) / 13);
    out[i] = Math.min(1, Math.max(0, clean + 0.1 * (s / 2 ** 32 - 0.5)));
  }
  return out;
}

interface Sizes {
  n2s: number[];
  batch: { n: number; size: number };
  mid: { size: number; masks: number };
  redDiff: { size: number; steps: number };
  eps: { count: number; timesteps: number };
  memoryCalls: number;
  http: { size: number; concurrency: number[] };
}

const FULL: Sizes = {
  n2s: [256, 512, 1024],
  batch: { n: 8, size: 512 },
  mid: { size: 512, masks: 8 },
  redDiff: { size: 256, steps: 100 },
  eps: { count: 64, timesteps: 20 },
  memoryCalls: 1000,
  http: { size: 512, concurrency: [1, 8, 64] },
};
const QUICK: Sizes = {
  n2s: [64, 128],
  batch: { n: 4, size: 64 },
  mid: { size: 64, masks: 2 },
  redDiff: { size: 32, steps: 5 },
  eps: { count: 4, timesteps: 2 },
  memoryCalls: 20,
  http: { size: 32, concurrency: [1, 2, 4] },
};

interface BackendResult {
  backend: string;
  n2s: {
    size: number;
    uploadMs: number;
    networkMs: number;
    readbackMs: number;
    callMs: number;
    wholeMs: number;
  }[];
  batch: { n: number; size: number; batchedMs: number; singleMs: number };
  midMs: number;
  redDiffMs: number;
  epsMs: number;
  memory: { calls: number; before: Record<string, unknown>; after: Record<string, unknown> };
  http: {
    concurrency: number;
    requests: number;
    p50: number;
    p95: number;
    imagesPerS: number;
    errors: number;
  }[];
  decodeMs: number;
  encodeMs: number;
}

/** One network call, split: upload (tensor to device), network (the model), read-back (values to the CPU). */
async function splitCall(tf: Tf, model: LayersModel, data: Float32Array, shape: number[]) {
  // A one-value read forces what came before it to finish, at the cost of a tiny kernel and read: measured alone.
  const touch = async (t: Tensor) => {
    const one = tf.slice(t, new Array(t.rank).fill(0), new Array(t.rank).fill(1));
    await one.data();
    one.dispose();
  };
  const small = tf.zeros(shape.map(() => 1));
  let t = performance.now();
  await touch(small);
  const touchMs = performance.now() - t;
  small.dispose();
  t = performance.now();
  const x = tf.tensor(data, shape);
  await touch(x);
  const uploadMs = Math.max(0, performance.now() - t - touchMs);
  t = performance.now();
  const y = model.predict(x) as Tensor;
  await touch(y);
  const networkMs = Math.max(0, performance.now() - t - touchMs);
  t = performance.now();
  await y.data();
  const readbackMs = performance.now() - t;
  tf.dispose([x, y]);
  return { uploadMs, networkMs, readbackMs };
}

async function benchBackend(
  tf: Tf,
  backend: string,
  sizes: Sizes,
  reps: number,
  log: (s: string) => void,
): Promise<Omit<BackendResult, 'http' | 'decodeMs' | 'encodeMs'>> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} is not available`);
  const { getModel, clearModelCache } = await import('../../src/nn/repository.js');
  const { denoiseNoise2Score } = await import('../../src/denoise/noise2score.js');
  const { denoiseMid } = await import('../../src/mid/denoise.js');
  const { redDiffRestore } = await import('../../src/diffusion/red-diff.js');
  const { centredBoxMask, maskOperator } = await import('../../src/diffusion/operators.js');
  const { scheduleFromManifest } = await import('../../src/adversarial/pipeline.js');
  const { ddpmEpsNetwork, expectedPerturbationScore } = await import('../../src/adversarial/eps.js');
  const { loadEpsAdDetector } = await import('../../src/adversarial/detector.js');
  await clearModelCache();
  const modelsDir = 'models';
  const n2s = await getModel(tf, modelsDir, 'noise2score-gaussian');
  const multiple = (n2s.manifest.architecture as { multiple?: number }).multiple ?? 8;

  const n2sRows: BackendResult['n2s'] = [];
  for (const size of sizes.n2s) {
    const data = noisyGrey(size, size);
    const parts = { uploadMs: [] as number[], networkMs: [] as number[], readbackMs: [] as number[] };
    await splitCall(tf, n2s.model, data, [1, size, size, 1]);
    for (let i = 0; i < reps; i++) {
      const p = await splitCall(tf, n2s.model, data, [1, size, size, 1]);
      parts.uploadMs.push(p.uploadMs);
      parts.networkMs.push(p.networkMs);
      parts.readbackMs.push(p.readbackMs);
    }
    const callMs = await timed(reps, async () => {
      const y = tf.tidy(() => n2s.model.predict(tf.tensor4d(data, [1, size, size, 1])) as Tensor);
      await y.data();
      y.dispose();
    });
    const image = { data, width: size, height: size, channels: 1 };
    const wholeMs = await timed(reps, () =>
      denoiseNoise2Score(tf, n2s.model, image, { noise: 'gaussian', level: 25 / 255, multiple, tile: size }),
    );
    const row = {
      size,
      uploadMs: median(parts.uploadMs),
      networkMs: median(parts.networkMs),
      readbackMs: median(parts.readbackMs),
      callMs,
      wholeMs,
    };
    n2sRows.push(row);
    log(`${backend} noise2score ${size}: ${JSON.stringify(row)}`);
  }

  const { n: bn, size: bs } = sizes.batch;
  const one = noisyGrey(bs, bs);
  const stacked = new Float32Array(bn * one.length);
  for (let i = 0; i < bn; i++) stacked.set(one, i * one.length);
  const run = async (d: Float32Array, n: number) => {
    const y = tf.tidy(() => n2s.model.predict(tf.tensor4d(d, [n, bs, bs, 1])) as Tensor);
    await y.data();
    y.dispose();
  };
  const batchedMs = await timed(reps, () => run(stacked, bn));
  const singleMs = await timed(reps, async () => {
    for (let i = 0; i < bn; i++) await run(one, 1);
  });
  log(
    `${backend} batch ${bn} x ${bs}: ${batchedMs.toFixed(1)} ms vs ${bn} single calls ${singleMs.toFixed(1)} ms`,
  );

  const memoryCalls = backend === 'wasm' ? Math.min(sizes.memoryCalls, 10) : sizes.memoryCalls;
  const memBefore = { ...tf.memory() } as Record<string, unknown>;
  for (let i = 0; i < memoryCalls; i++) await run(one, 1);
  const memAfter = { ...tf.memory() } as Record<string, unknown>;
  log(
    `${backend} tf.memory() over ${sizes.memoryCalls} calls: ${JSON.stringify(memBefore)} -> ${JSON.stringify(memAfter)}`,
  );

  const mid = await getModel(tf, modelsDir, 'mid-rgb');
  const dropRatio = (mid.manifest.extra as { maskRatio: number }).maskRatio;
  const rgb = {
    data: noisyGrey(sizes.mid.size, sizes.mid.size, 3),
    width: sizes.mid.size,
    height: sizes.mid.size,
    channels: 3,
  };
  const midMs = await timed(reps, () =>
    denoiseMid(tf, mid.model, rgb, { masks: sizes.mid.masks, dropRatio, seed: 0 }),
  );
  log(`${backend} mid K=${sizes.mid.masks} ${sizes.mid.size}: ${midMs.toFixed(1)} ms`);

  const ddpm = await getModel(tf, modelsDir, 'ddpm-natural-grey');
  const schedule = scheduleFromManifest(ddpm.manifest.extra);
  const rs = sizes.redDiff.size;
  const H = maskOperator(centredBoxMask(rs, rs, Math.floor(rs / 4)), rs, rs);
  const y = tf.tensor4d(
    Float32Array.from(noisyGrey(rs, rs), (v) => 2 * v - 1),
    [1, rs, rs, 1],
  );
  const yMasked = tf.tidy(() => H.forward(tf, y) as import('@tensorflow/tfjs').Tensor4D);
  const redDiffMs = await timed(Math.min(reps, 3), () =>
    redDiffRestore(tf, ddpmEpsNetwork(tf, ddpm.model), schedule, H, yMasked, { steps: sizes.redDiff.steps }),
  );
  tf.dispose([y, yMasked]);
  log(`${backend} red-diff ${sizes.redDiff.steps} steps ${rs}: ${redDiffMs.toFixed(1)} ms`);

  const fashion = await getModel(tf, modelsDir, 'ddpm-fashion-mnist');
  const eps = await getModel(tf, modelsDir, 'eps-ad-fashion-mnist');
  const detector = await loadEpsAdDetector(tf, eps.dir, eps.model);
  const fashionSchedule = scheduleFromManifest(fashion.manifest.extra);
  const { count, timesteps } = sizes.eps;
  const images = { data: noisyGrey(28, 28 * count), count, height: 28, width: 28, channels: 1 };
  const epsMs = await timed(Math.min(reps, 3), async () => {
    const e = await expectedPerturbationScore(
      tf,
      ddpmEpsNetwork(tf, fashion.model),
      fashionSchedule,
      images,
      {
        timesteps,
      },
    );
    await detector.scores(e.eps, count);
  });
  detector.dispose();
  log(`${backend} eps-ad ${count} images, ${timesteps} timesteps: ${epsMs.toFixed(1)} ms`);
  await clearModelCache();
  return {
    backend,
    n2s: n2sRows,
    batch: { n: bn, size: bs, batchedMs, singleMs },
    midMs,
    redDiffMs,
    epsMs,
    memory: { calls: memoryCalls, before: memBefore, after: memAfter },
  };
}

/** The real server on a port: POST /v1/denoise, PNG in, PNG out, `concurrency` clients in closed loops. */
async function benchHttp(
  backend: 'wasm' | 'webgpu',
  sizes: Sizes,
  workers: number,
  batch: number | undefined,
  log: (s: string) => void,
): Promise<Pick<BackendResult, 'http' | 'decodeMs' | 'encodeMs'>> {
  const sharp = (await import('sharp')).default;
  const { buildApp } = await import('../../src/app.js');
  const { loadConfig } = await import('../../src/config.js');
  const size = sizes.http.size;
  const px = Buffer.from(noisyGrey(size, size).map((v) => Math.round(v * 255)));
  const png = await sharp(px, { raw: { width: size, height: size, channels: 1 } })
    .png()
    .toBuffer();
  const decodeMs = await timed(5, () => sharp(png).raw().toBuffer());
  const encodeMs = await timed(5, () =>
    sharp(px, { raw: { width: size, height: size, channels: 1 } })
      .png()
      .toBuffer(),
  );
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    TFJS_BACKEND: backend,
    WORKERS: String(workers),
    MODELS_DIR: 'models',
    MODELS_REQUIRED: 'none',
    RATE_LIMIT_MAX: '1000000',
    QUEUE_MAX: '4096',
    REQUEST_TIMEOUT_MS: '600000',
  };
  if (batch !== undefined) env.BATCH_MAX_SIZE = String(batch);
  const cfg = loadConfig(env);
  const app = await buildApp(cfg);
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.models.settled;
  const address = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${address.port}/v1/denoise?noise=gaussian&level=25`;
  const post = async () => {
    const t = performance.now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw new Error(`${res.status} ${body.toString().slice(0, 200)}`);
    return performance.now() - t;
  };
  const rows: BackendResult['http'] = [];
  try {
    for (let i = 0; i < 2 * workers; i++) await post(); // warm-up: every worker loads the model
    for (const concurrency of sizes.http.concurrency) {
      // wasm: one request per client (a 512x512 request takes about a second of one core); webgpu: four.
      const perClient = backend === 'wasm' ? 1 : 4;
      const latencies: number[] = [];
      let errors = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let k = 0; k < perClient; k++) {
            try {
              latencies.push(await post());
            } catch (err) {
              errors++;
              if (errors === 1) log(`http error: ${(err as Error).message}`);
            }
          }
        }),
      );
      const wall = performance.now() - t0;
      const row = {
        concurrency,
        requests: concurrency * perClient,
        p50: latencies.length ? quantile(latencies, 0.5) : Number.NaN,
        p95: latencies.length ? quantile(latencies, 0.95) : Number.NaN,
        imagesPerS: (latencies.length * 1000) / wall,
        errors,
      };
      rows.push(row);
      log(`${backend} http c=${concurrency}: ${JSON.stringify(row)}`);
    }
  } finally {
    await app.close();
  }
  return { http: rows, decodeMs, encodeMs };
}

const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

function markdown(
  results: BackendResult[],
  meta: {
    adapter: string;
    quick: boolean;
    sizes: Sizes;
    reps: number;
    wasmReps: number;
    workers: number;
    date: string;
    machine: string;
  },
): string {
  const cols = results.map((r) => r.backend);
  const row = (label: string, pick: (r: BackendResult) => string) =>
    `| ${label} | ${results.map(pick).join(' | ')} |`;
  const head = `| measure | ${cols.join(' | ')} |\n|---|${cols.map(() => '---:').join('|')}|`;
  const lines: string[] = [
    `## GPU inference: wasm against WebGPU (\`npm run bench:gpu${meta.quick ? ' -- --quick' : ''}\`)`,
    '',
    `${meta.date}. Adapter: **${meta.adapter}**. Machine: ${meta.machine}. Median of ${meta.reps} runs (wasm: ${meta.wasmReps}) after a warm-up, ms unless named.` +
      (meta.quick
        ? ' **Quick mode (tiny sizes): a correctness run of the benchmark itself, not a measurement of GPU speed.**'
        : ''),
    '',
    head,
  ];
  for (let i = 0; i < meta.sizes.n2s.length; i++) {
    const s = meta.sizes.n2s[i];
    lines.push(
      row(`Noise2Score ${s}x${s}: network call (upload + network + read-back)`, (r) => {
        const x = r.n2s[i];
        return `${f(x.callMs)} (${f(x.uploadMs)} + ${f(x.networkMs)} + ${f(x.readbackMs)})`;
      }),
    );
    lines.push(row(`Noise2Score ${s}x${s}: whole denoising (Tweedie, planes)`, (r) => f(r.n2s[i].wholeMs)));
  }
  const b = meta.sizes.batch;
  lines.push(
    row(
      `batch of ${b.n} ${b.size}x${b.size} / ${b.n} single calls`,
      (r) => `${f(r.batch.batchedMs)} / ${f(r.batch.singleMs)}`,
    ),
  );
  lines.push(
    row(`MID K=${meta.sizes.mid.masks} ${meta.sizes.mid.size}x${meta.sizes.mid.size} RGB`, (r) => f(r.midMs)),
  );
  lines.push(
    row(
      `RED-Diff ${meta.sizes.redDiff.steps} steps ${meta.sizes.redDiff.size}x${meta.sizes.redDiff.size}`,
      (r) => f(r.redDiffMs),
    ),
  );
  lines.push(
    row(`EPS-AD ${meta.sizes.eps.count} images (${meta.sizes.eps.timesteps} timesteps) + MMD`, (r) =>
      f(r.epsMs),
    ),
  );
  lines.push(
    row('tf.memory() numBytes (webgpu: numBytesAllocatedInGPU) before -> after N network calls', (r) => {
      const key = r.backend === 'webgpu' ? 'numBytesAllocatedInGPU' : 'numBytes';
      return `${r.memory.before[key]} -> ${r.memory.after[key]} (N = ${r.memory.calls})`;
    }),
  );
  const hs = meta.sizes.http.size;
  lines.push(
    row(
      `PNG ${hs}x${hs} decode / encode (sharp, this thread)`,
      (r) => `${f(r.decodeMs, 2)} / ${f(r.encodeMs, 2)}`,
    ),
  );
  for (let i = 0; i < meta.sizes.http.concurrency.length; i++) {
    const c = meta.sizes.http.concurrency[i];
    lines.push(
      row(`HTTP POST /v1/denoise ${hs}x${hs} PNG, concurrency ${c}: p50 / p95, images/s`, (r) => {
        const h = r.http[i];
        return h
          ? `${f(h.p50)} / ${f(h.p95)}, ${f(h.imagesPerS)}${h.errors ? ` (${h.errors} errors)` : ''}`
          : '-';
      }),
    );
  }
  lines.push(
    '',
    `HTTP: the real server (buildApp) on a port, WORKERS=${meta.workers}, each worker on the named backend` +
      ' (webgpu: BATCH_MAX_SIZE 8, so concurrent requests share network calls); closed-loop clients (wasm: one' +
      ' request each, webgpu: four). The network-call split: upload and network are each closed by a one-value' +
      ' read, whose own time (measured alone) is subtracted.',
  );
  if (/software adapter|^none$/.test(meta.adapter)) {
    lines.push(
      '',
      'No GPU here: the webgpu column (if any) is a software adapter, the CPU running shaders, and says nothing of a' +
        ' GPU. On a machine with a GPU: `npm run bench:gpu`; on one without Node (the H200 of the `run` tool):' +
        ' `bash bench/gpu/pack.sh` here, then `bash bench/gpu/run-on-device.sh` there with `.gpu/node-run` and' +
        ' `.gpu/gl` carried.',
    );
  }
  return lines.join('\n');
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      backends: { type: 'string', default: 'wasm,webgpu' },
      reps: { type: 'string' },
      'wasm-reps': { type: 'string' },
      workers: { type: 'string', default: '4' },
      'no-http': { type: 'boolean', default: false },
    },
  });
  const quick = values.quick;
  const sizes = quick ? QUICK : FULL;
  const reps = Number(values.reps ?? (quick ? 2 : 5));
  const wasmReps = Number(values['wasm-reps'] ?? (quick ? reps : 1));
  const workers = Number(values.workers);
  const lines: string[] = [];
  const log = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  const { initTfjs } = await import('../../src/nn/backend.js');
  await import('../../src/compute/handlers/layers.js');
  const wanted = values.backends.split(',');
  const rt = await initTfjs(wanted.includes('webgpu') ? 'webgpu' : 'wasm');
  const { tf } = rt;
  await import('@tensorflow/tfjs-backend-wasm');
  const adapter = rt.adapter
    ? `${rt.adapter.vendor} ${rt.adapter.architecture} ${rt.adapter.description}`.trim() +
      (rt.adapter.software ? ' (software adapter)' : '')
    : 'none';
  log(`backend ${rt.backend}; adapter ${adapter}; tried ${JSON.stringify(rt.tried)}`);
  const backends = wanted.filter((b) => b !== 'webgpu' || rt.backend === 'webgpu') as ('wasm' | 'webgpu')[];
  if (wanted.includes('webgpu') && !backends.includes('webgpu')) log('no WebGPU device: webgpu skipped');
  const results: BackendResult[] = [];
  for (const backend of backends) {
    // wasm takes seconds per call at these sizes: fewer repetitions (and network calls for the memory check).
    const r = await benchBackend(tf, backend, sizes, backend === 'wasm' ? wasmReps : reps, log);
    const http = values['no-http']
      ? { http: [], decodeMs: Number.NaN, encodeMs: Number.NaN }
      : await benchHttp(backend, sizes, workers, backend === 'webgpu' ? 8 : undefined, log);
    results.push({ ...r, ...http });
  }
  const machine = `${cpus().length} x ${cpus()[0]?.model?.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load ${loadavg()[0].toFixed(1)}`;
  const md = markdown(results, {
    adapter,
    quick,
    sizes,
    reps,
    wasmReps,
    workers,
    date: new Date().toISOString().slice(0, 16).replace('T', ' '),
    machine,
  });
  const out = join('bench', 'out', 'gpu');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'results.json'),
    JSON.stringify({ adapter, quick, sizes, results, log: lines }, null, 2),
  );
  writeFileSync(join(out, 'section.md'), `${md}\n`);
  if (values['no-write']) console.log(md);
  else {
    const { writeResultsSection } = await import('../results-file.js');
    writeResultsSection('gpu', md, join('bench', 'RESULTS.md'));
    console.log(md);
  }
  const { releaseWebGpu } = await import('../../src/gpu/device.js');
  await releaseWebGpu();
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
