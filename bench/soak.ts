/**
 * Soak test (`npm run bench:soak`): a running service under moderate mixed load (OT plans and distances, denoise,
 * inpainting, adversarial detection when the route exists, jobs submitted and polled to their result) for
 * SOAK_MINUTES (default 30). Every SOAK_SAMPLE_SECONDS (default 60) it samples the process RSS and heap (from
 * /metrics) and the TF.js tensor count of every compute worker (GET /v1/_test/workers, hence ENABLE_TEST_TASKS on
 * the soaked service), then reports the least-squares slope of each (per minute, warm-up sample excluded) and the
 * error rate of the requests, all of which are valid. Writes the `soak` section of bench/RESULTS.md and the raw
 * samples to bench/out/soak.json.
 *
 *   npm run bench:soak                                  # starts the service from source, 30 minutes
 *   SOAK_MINUTES=2 SOAK_SAMPLE_SECONDS=15 npm run bench:soak
 *   SOAK_URL=http://127.0.0.1:8080 npm run bench:soak   # a service already running (ENABLE_TEST_TASKS=true,
 *                                                       # RATE_LIMIT_MAX=0 for tensor counts and no 429s)
 *
 * The load is open-loop: one request every 1/SOAK_RATE seconds (default 1 per second), taken in turn from the mix,
 * whatever the answers' latency; at most SOAK_MAX_INFLIGHT (default 8) at once, beyond which a tick is skipped and
 * counted (the client never piles up work the service cannot take).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 60);
const RATE = Number(process.env.SOAK_RATE ?? 1);
const MAX_INFLIGHT = Number(process.env.SOAK_MAX_INFLIGHT ?? 8);
const WORKERS = Number(process.env.SOAK_WORKERS ?? 2);
const WRITE_RESULTS = process.env.SOAK_WRITE !== '0';
/** Samples before this minute are warm-up (models loading, first GCs, allocator growth) and left out of the slopes. */
const WARMUP_MINUTES = Number(process.env.SOAK_WARMUP_MINUTES ?? 2);

interface SoakCase {
  name: string;
  description: string;
  /** Share of the mix (integer weight). */
  weight: number;
  /** One request (or, for jobs, submit + polls + result); resolves with the final HTTP status. */
  run: (url: string) => Promise<number>;
}

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
}

function cloud(n: number, d: number, shift: number, seed: number): number[][] {
  const u = lcg(seed);
  return Array.from({ length: n }, () =>
    Array.from({ length: d }, () => Math.round((u() + shift) * 1e4) / 1e4),
  );
}

async function noisyPng(size: number, sigma: number, seed: number): Promise<Buffer> {
  const u = lcg(seed);
  const pixels = Buffer.alloc(size * size);
  for (let i = 0; i < pixels.length; i++) {
    const x = i % size;
    const y = Math.floor(i / size);
    const clean = 128 + 60 * Math.sin(x / 5) * Math.cos(y / 7);
    const g = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
    pixels[i] = Math.max(0, Math.min(255, Math.round(clean + sigma * g)));
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } })
    .png()
    .toBuffer();
}

async function post(url: string, body: string | Buffer, type: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': type },
    body,
    signal: AbortSignal.timeout(120_000),
  });
}

/** Reads the body (so the connection is reused) and returns the status. */
async function statusOf(res: Response): Promise<number> {
  await res.arrayBuffer();
  return res.status;
}

async function buildCases(url: string): Promise<{ cases: SoakCase[]; notes: string[] }> {
  const notes: string[] = [];
  const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  const has = (p: string) => p in doc.paths;
  const noisy = await noisyPng(64, 25, 7);
  const noisyRgb = await sharp(await noisyPng(32, 15, 8))
    .toColourspace('srgb')
    .png()
    .toBuffer();
  const fashion = readFileSync(path.join(root, 'test/fixtures/images/fashion-t10k-0-32.png'));
  const otPlan = JSON.stringify({
    x: cloud(64, 2, 0, 1),
    y: cloud(64, 2, 0.5, 2),
    scaling: 'max',
    solver: { solver: 'sinkhorn', reg: 0.05 },
    output: { plan: 'sparse', threshold: 1e-6 },
  });
  const otDistance = JSON.stringify({
    x: cloud(40, 3, 0, 3),
    y: cloud(40, 3, 0.2, 4),
    solver: { solver: 'emd' },
  });
  const cases: SoakCase[] = [
    {
      name: 'ot-plan',
      description: 'POST /v1/ot/plan, 64 x 64 points in 2-D, Sinkhorn eps 0.05, sparse plan',
      weight: 3,
      run: async (u) => statusOf(await post(`${u}/v1/ot/plan`, otPlan, 'application/json')),
    },
    {
      name: 'ot-distance',
      description: 'POST /v1/ot/distance, 40 x 40 points in 3-D, exact (emd)',
      weight: 2,
      run: async (u) => statusOf(await post(`${u}/v1/ot/distance`, otDistance, 'application/json')),
    },
    {
      name: 'denoise',
      description: 'POST /v1/denoise?noise=gaussian&level=25, 64 x 64 grey PNG (Noise2Score)',
      weight: 2,
      run: async (u) => statusOf(await post(`${u}/v1/denoise?noise=gaussian&level=25`, noisy, 'image/png')),
    },
    {
      name: 'denoise-mid',
      description: 'POST /v1/denoise?method=mid, 32 x 32 RGB PNG (MID, real camera noise)',
      weight: 1,
      run: async (u) => statusOf(await post(`${u}/v1/denoise?method=mid`, noisyRgb, 'image/png')),
    },
    {
      name: 'inpaint',
      description: 'POST /v1/inpaint?maskRatio=0.5&steps=20&seed=1, 32 x 32 Fashion-MNIST PNG (RED-Diff)',
      weight: 1,
      run: async (u) =>
        statusOf(await post(`${u}/v1/inpaint?maskRatio=0.5&steps=20&seed=1`, fashion, 'image/png')),
    },
    {
      name: 'job-ot',
      description: 'POST /v1/jobs (ot.plan, 32 x 32, emd), polled every 100 ms, then GET its result',
      weight: 1,
      run: async (u) => {
        const submitted = await post(
          `${u}/v1/jobs`,
          JSON.stringify({
            operation: 'ot.plan',
            input: { x: cloud(32, 2, 0, 5), y: cloud(32, 2, 1, 6), solver: { solver: 'emd' } },
          }),
          'application/json',
        );
        if (submitted.status !== 202) return statusOf(submitted);
        const { id } = (await submitted.json()) as { id: string };
        const end = Date.now() + 120_000;
        while (Date.now() < end) {
          const view = (await (await fetch(`${u}/v1/jobs/${id}`)).json()) as { state: string };
          if (view.state === 'succeeded') return statusOf(await fetch(`${u}/v1/jobs/${id}/result`));
          if (view.state === 'failed' || view.state === 'cancelled') return 500;
          await new Promise((r) => setTimeout(r, 100));
        }
        return 504;
      },
    },
  ];
  const detectPath = Object.keys(doc.paths).find((p) => p.startsWith('/v1/detect'));
  if (detectPath) {
    cases.push({
      name: 'detect',
      description: `POST ${detectPath}?resize=true, 32 x 32 Fashion-MNIST PNG (EPS-AD)`,
      weight: 1,
      run: async (u) => statusOf(await post(`${u}${detectPath}?resize=true`, fashion, 'image/png')),
    });
  } else {
    notes.push('No /v1/detect route in this build: detection is not in the mix.');
  }
  // A case that cannot succeed once here (e.g. its model is missing) would only measure its refusal: drop it.
  const usable: SoakCase[] = [];
  for (const c of cases) {
    const status = await c.run(url).catch((err: Error) => `no answer (${err.message})`);
    if (status === 200) usable.push(c);
    else notes.push(`${c.name} left out of the mix: its calibration request answered ${status}.`);
  }
  if (!has('/v1/inpaint')) notes.push('No /v1/inpaint route.');
  return { cases: usable, notes };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function startService(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/server.ts')], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      WORKERS: String(WORKERS),
      TFJS_BACKEND: process.env.TFJS_BACKEND ?? 'wasm',
      // One client on one address: the per-address rate limit would answer 429s to valid requests.
      RATE_LIMIT_MAX: '0',
      // For GET /v1/_test/workers (tensor counts); the soak sends no test task otherwise.
      ENABLE_TEST_TASKS: 'true',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 300_000;
  while (Date.now() < end) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  // Ready means the required models; wait for the others too, so that no case is judged while its model loads.
  while (Date.now() < end) {
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { models?: { state: string }[] };
    if (!(models.models ?? []).some((m) => m.state === 'loading')) return { url, child };
    await new Promise((r) => setTimeout(r, 1000));
  }
  child.kill('SIGKILL');
  throw new Error('the service did not become ready within 300 s');
}

interface Sample {
  minute: number;
  rssMB: number;
  heapUsedMB: number;
  externalMB: number;
  numTensors: number | null;
  workers: number | null;
  requests: number;
}

function metricValue(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.trim().split(/\s+/).pop()) : Number.NaN;
}

async function sample(url: string, startedAt: number, requests: number): Promise<Sample> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  let numTensors: number | null = null;
  let workers: number | null = null;
  try {
    const res = await fetch(`${url}/v1/_test/workers`);
    if (res.ok) {
      const body = (await res.json()) as { numTensors: number; workers: unknown[] };
      numTensors = body.numTensors;
      workers = body.workers.length;
    }
  } catch {
    /* test routes off */
  }
  const mb = (v: number) => Math.round((v / 2 ** 20) * 10) / 10;
  return {
    minute: Math.round(((Date.now() - startedAt) / 60_000) * 100) / 100,
    rssMB: mb(metricValue(metrics, 'process_resident_memory_bytes')),
    heapUsedMB: mb(metricValue(metrics, 'nodejs_heap_size_used_bytes')),
    externalMB: mb(metricValue(metrics, 'nodejs_external_memory_bytes')),
    numTensors,
    workers,
    requests,
  };
}

/** Least-squares slope of y against x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((s, v) => s + v, 0) / n;
  const my = ys.reduce((s, v) => s + v, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function main() {
  const started = process.env.SOAK_URL ? undefined : await startService();
  const url = process.env.SOAK_URL ?? started?.url ?? '';
  try {
    const { cases, notes } = await buildCases(url);
    if (cases.length === 0) throw new Error(`no usable case: ${notes.join(' ')}`);
    const schedule = cases.flatMap((c) => Array.from({ length: c.weight }, () => c));
    const stats = new Map(
      cases.map((c) => [
        c.name,
        { ok: 0, errors: 0, statuses: new Map<string, number>(), ms: [] as number[] },
      ]),
    );
    let inflight = 0;
    let skipped = 0;
    let sent = 0;
    const startedAt = Date.now();
    const samples: Sample[] = [await sample(url, startedAt, 0)];
    console.log('sample', JSON.stringify(samples[0]));
    const pending = new Set<Promise<void>>();
    const endAt = startedAt + MINUTES * 60_000;
    let nextSample = startedAt + SAMPLE_SECONDS * 1000;
    let tick = 0;
    while (Date.now() < endAt) {
      const due = startedAt + (tick * 1000) / RATE;
      tick++;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (Date.now() >= nextSample) {
        nextSample += SAMPLE_SECONDS * 1000;
        const s = await sample(url, startedAt, sent);
        samples.push(s);
        console.log('sample', JSON.stringify(s));
      }
      if (inflight >= MAX_INFLIGHT) {
        skipped++;
        continue;
      }
      const c = schedule[tick % schedule.length];
      const st = stats.get(c.name);
      if (!st) continue;
      inflight++;
      sent++;
      const t0 = performance.now();
      const p = c
        .run(url)
        .then(
          (status) => String(status),
          (err: Error) => `error: ${err.name}`,
        )
        .then((outcome) => {
          st.ms.push(performance.now() - t0);
          if (outcome === '200') st.ok++;
          else st.errors++;
          st.statuses.set(outcome, (st.statuses.get(outcome) ?? 0) + 1);
        })
        .finally(() => {
          inflight--;
          pending.delete(p);
        });
      pending.add(p);
    }
    await Promise.all(pending);
    samples.push(await sample(url, startedAt, sent));

    const steady = samples.filter((s) => s.minute >= Math.min(WARMUP_MINUTES, MINUTES / 2));
    const secondHalf = samples.filter((s) => s.minute >= MINUTES / 2);
    const xs = steady.map((s) => s.minute);
    const rssSlope = slope(
      xs,
      steady.map((s) => s.rssMB),
    );
    const heapSlope = slope(
      xs,
      steady.map((s) => s.heapUsedMB),
    );
    const rssSlopeSecondHalf = slope(
      secondHalf.map((s) => s.minute),
      secondHalf.map((s) => s.rssMB),
    );
    const tensorSamples = steady.filter((s) => s.numTensors !== null);
    const tensorSlope = slope(
      tensorSamples.map((s) => s.minute),
      tensorSamples.map((s) => s.numTensors as number),
    );
    const total = [...stats.values()].reduce((s, v) => s + v.ok + v.errors, 0);
    const errors = [...stats.values()].reduce((s, v) => s + v.errors, 0);
    const report = {
      minutes: MINUTES,
      rate: RATE,
      workers: started ? WORKERS : 'external',
      requests: total,
      errors,
      skipped,
      rssSlopeMBPerMin: rssSlope,
      rssSlopeSecondHalfMBPerMin: rssSlopeSecondHalf,
      heapSlopeMBPerMin: heapSlope,
      tensorSlopePerMin: tensorSlope,
      samples,
      notes,
      cases: Object.fromEntries(
        [...stats.entries()].map(([name, s]) => [name, { ...s, statuses: Object.fromEntries(s.statuses) }]),
      ),
    };
    mkdirSync(path.join(root, 'bench/out'), { recursive: true });
    writeFileSync(
      path.join(root, 'bench/out/soak.json'),
      JSON.stringify({ ...report, cases: undefined }, null, 1),
    );
    console.log(JSON.stringify({ ...report, samples: undefined, cases: undefined }));

    const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
    const first = steady[0];
    const last = steady[steady.length - 1];
    const lines = [
      `## Soak (\`npm run bench:soak\`)`,
      '',
      `${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}, load ` +
        `average at the end ${os.loadavg()[0].toFixed(1)}: the cores are shared with model trainings), ` +
        `${report.workers} compute workers, wasm backend, RATE_LIMIT_MAX=0. ${MINUTES} minutes of open-loop load at ` +
        `${RATE} request(s)/s in this mix (every request valid):`,
      '',
      '| case | weight | requests | errors | p50 ms | p99 ms | statuses |',
      '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
      ...cases.map((c) => {
        const s = stats.get(c.name);
        const ms = [...(s?.ms ?? [])].sort((a, b) => a - b);
        const statuses = [...(s?.statuses ?? new Map()).entries()].map(([k, v]) => `${k}: ${v}`).join(', ');
        return `| ${c.name}: ${c.description} | ${c.weight} | ${ms.length} | ${s?.errors ?? 0} | ${f(percentile(ms, 50), 0)} | ${f(percentile(ms, 99), 0)} | ${statuses} |`;
      }),
      '',
      `Error rate on valid requests: **${errors} / ${total}** (${f((100 * errors) / Math.max(1, total), 3)} %); ` +
        `ticks skipped because ${MAX_INFLIGHT} requests were already in flight: ${skipped}.`,
      '',
      `Samples every ${SAMPLE_SECONDS} s (${samples.length}; those of the first ${WARMUP_MINUTES} minutes are warm-up ` +
        `and left out of the slopes; least-squares slope per minute over the rest; RSS over the second half alone: ` +
        `${f(rssSlopeSecondHalf, 3)} MB per minute):`,
      '',
      '| quantity | first | last | min | max | slope per minute |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...(
        [
          ['RSS (MB)', 'rssMB', rssSlope],
          ['V8 heap used (MB)', 'heapUsedMB', heapSlope],
          ['TF.js tensors, all workers', 'numTensors', tensorSlope],
        ] as const
      ).map(([label, key, sl]) => {
        const vals = steady.map((s) => s[key]).filter((v): v is number => v !== null);
        return `| ${label} | ${f(first?.[key] ?? Number.NaN, 1)} | ${f(last?.[key] ?? Number.NaN, 1)} | ${f(Math.min(...vals), 1)} | ${f(Math.max(...vals), 1)} | ${f(sl, 3)} |`;
      }),
      '',
      ...notes.map((n) => `- ${n}`),
      '',
      'Raw samples: `bench/out/soak.json` (not committed). Reproduce: `SOAK_MINUTES=30 npm run bench:soak`.',
    ];
    if (WRITE_RESULTS) writeSection(lines.join('\n'));
  } finally {
    if (started) {
      const exited = new Promise((r) => started.child.once('exit', r));
      started.child.kill('SIGTERM');
      await exited;
    }
  }
}

function writeSection(markdown: string) {
  const file = path.join(root, 'bench/RESULTS.md');
  const text = readFileSync(file, 'utf8');
  const begin = '<!-- soak:begin -->';
  const end = '<!-- soak:end -->';
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  const next =
    a >= 0 && b > a
      ? text.slice(0, a) + section + text.slice(b + end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
  console.log('wrote the soak section of bench/RESULTS.md');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
