/**
 * The answer of a solved OT problem for JSON (src/ot/output.ts): a job's or a GraphQL answer's plan is converted on
 * the main thread in slices (planToJsonYielding), the same values as planToJson, with the event loop free between.
 */
import { describe, expect, it } from 'vitest';
import { PLAIN_SLICE, planToJson, planToJsonYielding } from '../../src/ot/output.js';
import type { OtPlanOutput } from '../../src/ot/solve.js';

/** A solved-looking output whose dense plan holds n x m values (only the shape of the answer matters here). */
function output(n: number, m: number, format: 'dense' | 'sparse'): OtPlanOutput {
  const data = Float64Array.from({ length: n * m }, (_, i) => ((i * 7919) % 1000) / 1e6);
  const plan =
    format === 'dense'
      ? { format, data }
      : {
          format,
          rows: Int32Array.from({ length: n }, (_, i) => i),
          cols: Int32Array.from({ length: n }, (_, i) => i % m),
          values: data.subarray(0, n),
          threshold: 0,
          nnz: n,
        };
  return {
    n,
    m,
    cost: 1.5,
    plan,
    f: Float64Array.from({ length: n }, (_, i) => i / n),
    g: Float64Array.from({ length: m }, (_, i) => -i / m),
  } as unknown as OtPlanOutput;
}

describe('planToJsonYielding', () => {
  it('gives what planToJson gives, dense and sparse', async () => {
    for (const format of ['dense', 'sparse'] as const) {
      const out = output(37, 23, format);
      expect(await planToJsonYielding(out)).toEqual(planToJson(out));
    }
  });

  it('lets the event loop run between slices of a large plan', async () => {
    const out = output(300, 400, 'dense'); // 120 000 values: several slices
    let ticks = 0;
    let running = true;
    const tick = () => {
      ticks++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const json = await planToJsonYielding(out);
    running = false;
    expect((json.plan as unknown as { data: number[] }).data).toHaveLength(120_000);
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(120_000 / PLAIN_SLICE) - 1);
  });
});
