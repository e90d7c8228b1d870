/**
 * `npx tsx bench/detect-cost.ts`: the compute cost of POST /v1/detect/adversarial (EPS-AD) on this machine, which
 * the service uses to turn a request whose estimated cost exceeds its deadline into a job
 * (src/operations/detect/operation.ts DETECT_MS_PER_IMAGE_STEP, DETECT_MS_PER_PERMUTATION_PAIR). Through the real
 * app (one compute worker, the committed eps-ad-fashion-mnist detector, TFJS_BACKEND=wasm unless --backend), JSON
 * bodies of --counts synthetic 28x28 grey PNGs at the detector's T* (20): prints the compute time (worker decode +
 * EPS + kernel + permutation test), the EPS and kernel parts, the median of --repeat runs, and the cost per image
 * and timestep; then one batch at --permutations permutations, for the permutation test's cost per pair.
 */
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { costBenchApp, median } from './cost-app.js';

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '1,4,16,64' },
    repeat: { type: 'string', default: '3' },
    permutations: { type: 'string', default: '5000' },
    backend: { type: 'string', default: 'wasm' },
  },
});

async function greyPng(seed: number): Promise<string> {
  const data = Buffer.alloc(28 * 28);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s >>> 16) % 256;
  }
  const png = await sharp(data, { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toBuffer();
  return png.toString('base64');
}

const app = await costBenchApp(values.backend);

async function detect(count: number, permutations: number) {
  const images = await Promise.all(Array.from({ length: count }, (_, i) => greyPng(1 + i)));
  const res = await app.inject({
    method: 'POST',
    url: '/v1/detect/adversarial?async=false&timeoutMs=600000',
    payload: { images, permutations },
  });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`);
  return res.json() as { timesteps: number; timings: Record<string, number> };
}

try {
  for (const name of ['eps-ad-fashion-mnist', 'ddpm-fashion-mnist']) {
    const end = Date.now() + 300_000;
    while (app.models.get(name)?.state !== 'ready') {
      if (Date.now() > end) throw new Error(`${name} did not load: ${JSON.stringify(app.models.get(name))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await detect(1, 10); // warm-up: the score network's first call compiles its kernels
  console.log(
    `backend ${app.compute.info?.backend}; compute ms (median of ${values.repeat}), 200 permutations`,
  );
  console.log('images  T*  computeMs   epsMs  kernelMs  ms/(image*step)');
  for (const count of values.counts.split(',').map(Number)) {
    const runs: Awaited<ReturnType<typeof detect>>[] = [];
    for (let r = 0; r < Number(values.repeat); r++) runs.push(await detect(count, 200));
    const pick = (k: string) => median(runs.map((x) => x.timings[k]));
    const t = runs[0].timesteps;
    console.log(
      `${String(count).padStart(6)} ${String(t).padStart(3)} ${pick('computeMs').toFixed(0).padStart(10)} ${pick('epsMs').toFixed(0).padStart(7)} ${pick('kernelMs').toFixed(0).padStart(9)} ${(pick('epsMs') / (count * t)).toFixed(2).padStart(16)}`,
    );
  }
  // The permutation test: kernelMs at many permutations less kernelMs at 10, per permutation and pooled pair.
  const count = 16;
  const many = Number(values.permutations);
  const few: number[] = [];
  for (let r = 0; r < 3; r++) few.push((await detect(count, 10)).timings.kernelMs);
  const base = median(few);
  const xs: number[] = [];
  for (let r = 0; r < 3; r++) xs.push((await detect(count, many)).timings.kernelMs);
  const pooled = 300 + count;
  const perPair = (median(xs) - base) / ((many - 10) * pooled * pooled);
  console.log(
    `permutation test, ${count} images (pooled ${pooled} with the 300 reference EPS): kernelMs ${base.toFixed(0)} at 10, ${median(xs).toFixed(0)} at ${many}: ${(perPair * 1e6).toFixed(2)} ns per permutation and pooled pair`,
  );
} finally {
  await app.close();
}
