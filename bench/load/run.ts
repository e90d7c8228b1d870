/**
 * Load benchmark (`npm run bench:load`): a running service on loopback under autocannon, per case and concurrency
 * (1, 2, 8, 32): throughput, p50/p95/p99 latency, and the p99 of /readyz probed at the same time (it must stay
 * under 50 ms while compute is saturated). Next to the measured throughput: the compute-bound limit
 * (workers / single-task time, the task time measured inside the service) and the service overhead against it.
 * Then the queue-full drill: a burst far beyond QUEUE_MAX must be answered in full, the excess with
 * 503 + Retry-After, nothing lost or hung. Writes the `load` section of bench/RESULTS.md.
 *
 *   npm run bench:load                       # starts the service from source (WORKERS=2)
 *   BENCH_URL=http://127.0.0.1:8080 npm run bench:load   # or measure a service already running
 *   BENCH_SECONDS=10 BENCH_CASES=ot-small npm run bench:load
 *
 * Cases are a table: a new operation (denoise, restore) adds one entry with its request and how to read its
 * in-service task time; a case whose route is missing is skipped with a note.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// autocannon ships without types; this is the part of its API used here.
interface AutocannonClient {
  on(event: 'response', fn: (statusCode: number, bytes: number, responseTime: number) => void): void;
}
interface AutocannonResult {
  requests: { total: number; average: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,2,8,32').split(',').map(Number);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);

interface LoadCase {
  name: string;
  description: string;
  method: 'POST';
  path: string;
  headers: Record<string, string>;
  body: () => Promise<string | Buffer>;
  /** Seconds per cell (slow operations need longer than BENCH_SECONDS to complete enough requests). */
  seconds?: number;
  /** In-service time of one task (ms), read from a response; used for the compute-bound limit. */
  taskMs: (res: Response, body: ArrayBuffer) => number | undefined;
}

function gaussianCloud(n: number, d: number, shift: number, seed: number): number[][] {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return Array.from({ length: n }, () =>
    Array.from({ length: d }, () => {
      const g = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
      return Math.round((g + shift) * 1e6) / 1e6;
    }),
  );
}

const CASES: LoadCase[] = [
  {
    name: 'ot-small',
    description:
      'POST /v1/ot/plan, 200 x 200 points in 2-D, Sinkhorn eps = 0.05 (cost scaled by max), no plan returned',
    method: 'POST',
    path: '/v1/ot/plan',
    headers: { 'content-type': 'application/json' },
    body: async () =>
      JSON.stringify({
        x: gaussianCloud(200, 2, 0, 1),
        y: gaussianCloud(200, 2, 1, 2),
        scaling: 'max',
        solver: { solver: 'sinkhorn', reg: 0.05, maxIter: 1000 },
        output: { plan: 'none', potentials: false },
      }),
    taskMs: (_res, body) => JSON.parse(Buffer.from(body).toString()).timings?.solveMs,
  },
  {
    // The hook for image operations: skipped until POST /v1/denoise answers.
    name: 'denoise-256',
    description: 'POST /v1/denoise, 256 x 256 grey PNG with Gaussian noise sigma = 25, Noise2Score',
    method: 'POST',
    path: '/v1/denoise?noise=gaussian&level=25',
    seconds: Math.max(SECONDS, 20),
    headers: { 'content-type': 'image/png' },
    body: async () => {
      const sharp = (await import('sharp')).default;
      const size = 256;
      const pixels = Buffer.alloc(size * size);
      const noise = gaussianCloud(size * size, 1, 0, 3);
      for (let i = 0; i < pixels.length; i++) {
        const clean = 128 + 64 * Math.sin(i / 97) * Math.cos(i / 5003);
        pixels[i] = Math.max(0, Math.min(255, Math.round(clean + 25 * noise[i][0])));
      }
      return sharp(pixels, { raw: { width: size, height: size, channels: 1 } })
        .png()
        .toBuffer();
    },
    taskMs: (res) => {
      const v = res.headers.get('x-timing-total-ms');
      return v === null ? undefined : Number(v);
    },
  },
];

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

async function startService(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/server.ts')], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      WORKERS: String(WORKERS),
      TFJS_BACKEND: 'wasm',
      // The load generator is one client on one address: the per-client rate limit would answer 429s.
      RATE_LIMIT_MAX: '0',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return { url, child };
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGKILL');
  throw new Error('the service did not become ready within 120 s');
}

async function stopService(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

/** Sequential requests: the in-service time of one task (median), and whether the route exists. */
async function calibrate(url: string, c: LoadCase, body: string | Buffer, n = 20) {
  const taskTimes: number[] = [];
  for (let i = 0; i < n; i++) {
    let res: Response;
    try {
      res = await fetch(url + c.path, { method: c.method, headers: c.headers, body });
    } catch (err) {
      return { available: false as const, status: `no answer (${(err as Error).message})` };
    }
    const bytes = await res.arrayBuffer();
    if (res.status === 404) return { available: false as const, status: 404 };
    if (!res.ok) return { available: false as const, status: res.status };
    const t = c.taskMs(res, bytes);
    if (t !== undefined && Number.isFinite(t)) taskTimes.push(t);
  }
  return { available: true as const, taskMs: median(taskTimes) };
}

interface Row {
  c: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
  readyP99: number;
  readyMax: number;
}

async function measure(url: string, c: LoadCase, body: string | Buffer, connections: number): Promise<Row> {
  const latencies: number[] = [];
  let ok = 0;
  const readyLatencies: number[] = [];
  const track =
    (into: number[], countOk = false) =>
    (client: AutocannonClient) =>
      client.on('response', (status, _bytes, ms) => {
        into.push(ms);
        if (countOk && status >= 200 && status < 300) ok++;
      });
  const [load] = await Promise.all([
    autocannon({
      url: url + c.path,
      method: c.method,
      headers: c.headers,
      body,
      connections,
      duration: c.seconds ?? SECONDS,
      timeout: 60,
      setupClient: track(latencies, true),
    }),
    // The orchestrator's view: 20 readiness probes a second on their own connection.
    autocannon({
      url: `${url}/readyz`,
      connections: 1,
      overallRate: 20,
      duration: c.seconds ?? SECONDS,
      setupClient: track(readyLatencies),
    }),
  ]);
  const sorted = [...latencies].sort((a, b) => a - b);
  const readySorted = [...readyLatencies].sort((a, b) => a - b);
  return {
    c: connections,
    rps: ok / load.duration,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    ok,
    non2xx: load.non2xx,
    errors: load.errors + load.timeouts,
    readyP99: percentile(readySorted, 99),
    readyMax: readySorted.at(-1) ?? Number.NaN,
  };
}

/** Fire `n` requests at once at a service with a small queue: every one must be answered, the excess with 503. */
async function queueFullDrill(url: string, c: LoadCase, body: string | Buffer, n: number) {
  const started = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: n }, async () => {
      try {
        const res = await fetch(url + c.path, {
          method: c.method,
          headers: c.headers,
          body,
          signal: AbortSignal.timeout(60_000),
        });
        const json = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
        return { status: res.status, retryAfter: res.headers.get('retry-after'), code: json.error?.code };
      } catch (err) {
        return { status: 0, retryAfter: null, code: (err as Error).name };
      }
    }),
  );
  const refused = outcomes.filter((o) => o.status === 503);
  return {
    sent: n,
    answered: outcomes.filter((o) => o.status > 0).length,
    ok: outcomes.filter((o) => o.status === 200).length,
    refused: refused.length,
    refusedWithRetryAfter: refused.filter((o) => o.retryAfter !== null && Number(o.retryAfter) > 0).length,
    refusedCodes: [...new Set(refused.map((o) => o.code))],
    other: outcomes
      .filter((o) => o.status !== 200 && o.status !== 503)
      .map((o) => `${o.status} ${o.code ?? ''}`),
    seconds: (Date.now() - started) / 1000,
  };
}

const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

function writeSection(markdown: string) {
  const file = path.join(root, 'bench/RESULTS.md');
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text = '# Benchmark results\n';
  }
  const begin = '<!-- load:begin -->';
  const end = '<!-- load:end -->';
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  text =
    a >= 0 && b > a
      ? text.slice(0, a) + section + text.slice(b + end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text);
}

async function main() {
  const external = process.env.BENCH_URL;
  const wanted = process.env.BENCH_CASES?.split(',');
  const cases = CASES.filter((c) => !wanted || wanted.includes(c.name));
  const lines: string[] = [];
  const load = os.loadavg().map((x) => x.toFixed(2));
  lines.push('## Load (`npm run bench:load`)', '');
  lines.push(
    `Machine: nproc ${os.availableParallelism()}, ${os.cpus()[0]?.model.trim()}, Node ${process.version}; ` +
      `load average before the run ${load.join(' / ')} (the cores are shared with other work: expect noise). ` +
      `Service: ${external ? external : `started from source, WORKERS=${WORKERS}, TFJS_BACKEND=wasm`}, on loopback; ` +
      `autocannon for ${SECONDS} s per cell (denoise: 20 s), and at the same time /readyz probed 20 times a second on its own ` +
      `connection. Latencies in ms. Compute-bound limit = workers / single-task time, the task time measured ` +
      `inside the service (median of 20 sequential requests); overhead = 1 - measured / limit.`,
    '',
  );

  let service: { url: string; child?: ChildProcess } = external ? { url: external } : await startService({});
  const workers = external
    ? ((await (await fetch(`${service.url}/readyz`)).json()) as { compute: { workers: number } }).compute
        .workers
    : WORKERS;
  const summaries: string[] = [];
  try {
    for (const c of cases) {
      if (service.child && service.child.exitCode !== null) service = await startService({});
      const body = await c.body();
      const cal = await calibrate(service.url, c, body);
      if (!cal.available) {
        lines.push(
          `### ${c.name}`,
          '',
          `Skipped: ${c.path} answered ${cal.status} (not available in this build).`,
          '',
        );
        console.log(`${c.name}: skipped (${cal.status})`);
        continue;
      }
      const limit = (workers * 1000) / cal.taskMs;
      lines.push(`### ${c.name}: ${c.description}`, '');
      lines.push(
        `Single-task time ${f(cal.taskMs, 2)} ms x ${workers} workers: compute-bound limit ${f(limit)} req/s.`,
        '',
      );
      lines.push(
        '| concurrency | req/s | of limit | overhead | p50 | p95 | p99 | non-2xx | errors | /readyz p99 | /readyz max |',
      );
      lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (const conn of CONCURRENCY) {
        const r = await measure(service.url, c, body, conn);
        const share = r.rps / limit;
        lines.push(
          `| ${conn} | ${f(r.rps)} | ${f(100 * share, 0)} % | ${f(100 * (1 - share), 0)} % | ${f(r.p50)} | ${f(r.p95)} | ${f(r.p99)} | ${r.non2xx} | ${r.errors} | ${f(r.readyP99)} | ${f(r.readyMax)} |`,
        );
        console.log(
          `${c.name} c=${conn}: ${f(r.rps)} req/s (limit ${f(limit)}), p50 ${f(r.p50)} p95 ${f(r.p95)} p99 ${f(r.p99)} ms, readyz p99 ${f(r.readyP99)} ms`,
        );
        if (conn === Math.max(...CONCURRENCY)) {
          summaries.push(
            `${c.name}: ${f(r.rps)} req/s at concurrency ${conn} = ${f(100 * share, 0)} % of the compute-bound ` +
              `${f(limit)} req/s; /readyz p99 ${f(r.readyP99)} ms`,
          );
        }
      }
      lines.push('');
    }
  } finally {
    if (service.child) await stopService(service.child);
  }

  // Queue full, on purpose: a service with QUEUE_MAX=4 and a burst of 100 at once.
  if (!external) {
    const c = cases.find((x) => x.name === 'ot-small') ?? CASES[0];
    const small = await startService({ QUEUE_MAX: '4' });
    try {
      const body = await c.body();
      await calibrate(small.url, c, body, 3);
      const drill = await queueFullDrill(small.url, c, body, 100);
      lines.push('### Queue full, on purpose', '');
      lines.push(
        `Service with WORKERS=${WORKERS}, QUEUE_MAX=4; ${drill.sent} ${c.name} requests sent at once: ` +
          `${drill.answered} answered in ${f(drill.seconds, 2)} s (none lost or hung), ${drill.ok} computed, ` +
          `${drill.refused} refused with 503 (${drill.refusedCodes.join(', ')}), ` +
          `${drill.refusedWithRetryAfter} of them with Retry-After` +
          (drill.other.length ? `; other answers: ${drill.other.join(', ')}` : '') +
          '.',
        '',
      );
      console.log('queue-full drill:', drill);
      summaries.push(
        `queue full: ${drill.refused}/${drill.sent} refused with 503 + Retry-After, ${drill.answered} answered`,
      );
    } finally {
      await stopService(small.child);
    }
  }
  const cores = os.availableParallelism();
  if (os.loadavg()[0] > cores) {
    lines.push(
      `Reading: the machine was oversubscribed (load average ${os.loadavg()[0].toFixed(1)} on ${cores} cores, ` +
        'most of it other work), while the limit assumes every worker has a free core; so the overhead column ' +
        'here measures CPU contention more than the service. Rerun on an idle machine to check the <= 10 % target.',
      '',
    );
  }
  lines.push(`Run on ${new Date().toISOString().slice(0, 10)}. Summary: ${summaries.join('; ')}.`);
  writeSection(lines.join('\n'));
  console.log('wrote the load section of bench/RESULTS.md');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
