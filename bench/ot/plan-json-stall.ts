/**
 * The longest event-loop stall while an OT plan is converted for a job's or a GraphQL answer (src/ot/output.ts):
 * planToJson in one go against planToJsonYielding (slices of PLAIN_SLICE numbers, yielding between them), on dense
 * n x n plans. Prints the conversion time and the longest gap between the ticks of a 1 ms timer during it (the
 * longest stall of the event loop), median of 5 runs each.
 *
 *   npx tsx bench/ot/plan-json-stall.ts [n ...]   (default: 1000 2000)
 */
import { planToJson, planToJsonYielding } from '../../src/ot/output.js';
import type { OtPlanOutput } from '../../src/ot/solve.js';

function denseOutput(n: number): OtPlanOutput {
  return {
    n,
    m: n,
    cost: 1,
    plan: {
      format: 'dense',
      data: Float64Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1e6),
    },
    f: new Float64Array(n),
    g: new Float64Array(n),
  } as unknown as OtPlanOutput;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

async function measure(convert: () => unknown): Promise<{ ms: number; stallMs: number }> {
  // A 1 ms timer records the longest gap between its ticks: a stall of the event loop shows as a late tick.
  let last = performance.now();
  let stallMs = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  stallMs = 0;
  const t0 = performance.now();
  await convert();
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(tick);
  return { ms, stallMs };
}

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
for (const n of sizes.length ? sizes : [1000, 2000]) {
  const out = denseOutput(n);
  for (const [label, convert] of [
    ['planToJson (one go)', () => planToJson(out)],
    ['planToJsonYielding (slices)', () => planToJsonYielding(out)],
  ] as const) {
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push(await measure(convert));
    console.log(
      `${n}x${n} ${label}: ${median(runs.map((r) => r.ms)).toFixed(0)} ms, longest stall ${median(runs.map((r) => r.stallMs)).toFixed(0)} ms`,
    );
  }
}
