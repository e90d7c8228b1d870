/**
 * `npx tsx bench/denoise/cost.ts`: the compute cost of POST /v1/denoise per megapixel on this machine, which the
 * service uses to turn a request whose estimated cost exceeds its deadline into a job
 * (src/operations/denoise/operation.ts DENOISE_MS_PER_MEGAPIXEL). Through the real app (one compute worker, the
 * committed models, TFJS_BACKEND=wasm unless --backend), a synthetic noisy RGB image of each --sizes side:
 * Noise2Score (noise2score-gaussian, level auto, ensemble 1) and MID (mid-rgb, one mask). Prints the compute time
 * (worker decode + network + encode) per megapixel, the median of --repeat runs.
 */
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { costBenchApp, median } from '../cost-app.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '256,512,1024' },
    repeat: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'wasm' },
  },
});

async function noisyPng(side: number): Promise<Buffer> {
  const data = Buffer.alloc(side * side * 3);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const x = Math.floor(i / 3) % side;
    data[i] = Math.max(0, Math.min(255, 128 + 60 * Math.sin(x / 9) + ((s >>> 16) % 50) - 25));
  }
  return sharp(data, { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();
}

const app = await costBenchApp(values.backend);
try {
  // Models load in the background: wait for the two this measures.
  for (const name of ['noise2score-gaussian', 'mid-rgb']) {
    const end = Date.now() + 300_000;
    while (app.models.get(name)?.state !== 'ready') {
      if (Date.now() > end) throw new Error(`${name} did not load: ${JSON.stringify(app.models.get(name))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  console.log(`backend ${app.compute.info?.backend}; compute ms per megapixel (median of ${values.repeat})`);
  console.log('method       side   MP      ms      ms/MP');
  for (const [method, query] of [
    ['noise2score', 'noise=gaussian&level=auto&ensemble=1'],
    ['mid', 'method=mid&masks=1'],
  ] as const) {
    for (const side of values.sizes.split(',').map(Number)) {
      const png = await noisyPng(side);
      const times: number[] = [];
      for (let r = 0; r < Number(values.repeat); r++) {
        const res = await app.inject({
          method: 'POST',
          url: `/v1/denoise?${query}&output=json&async=false&timeoutMs=600000`,
          headers: { 'content-type': 'image/png' },
          payload: png,
        });
        if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`);
        times.push(res.json().timings.computeMs);
      }
      const ms = median(times);
      const mp = (side * side) / 1e6;
      console.log(
        `${method.padEnd(12)} ${String(side).padStart(5)} ${mp.toFixed(3)} ${ms.toFixed(0).padStart(7)} ${(ms / mp).toFixed(0).padStart(8)}`,
      );
    }
  }
} finally {
  await app.close();
}
