/**
 * Online (matrix-free) Sinkhorn through REST, GraphQL and jobs: `solver.online`, the automatic switch above
 * OT_MAX_ENTRIES for point clouds, its own limit OT_ONLINE_MAX_POINTS, sparse plans, and the coded 422s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../src/util/random.js';
import { jobResult, makeApp } from '../../helpers.js';

function cloud(rng: Rng, n: number, d: number, shift = 0) {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal() + shift));
}

const maxDiff = (p: number[], q: number[]) => Math.max(...p.map((v, k) => Math.abs(v - q[k])));

describe('online Sinkhorn over REST, GraphQL and jobs', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  // 30 x 25 = 750 entries: above OT_MAX_ENTRIES, so point clouds of this size run online by default.
  beforeAll(async () => {
    app = await makeApp({ OT_MAX_ENTRIES: 700, OT_ONLINE_MAX_POINTS: 40 });
  });
  afterAll(async () => {
    await app.close();
  });
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
  const rng = new Rng(11);
  const x = cloud(rng, 30, 2);
  const y = cloud(rng, 25, 2, 1);
  const small = { x: x.slice(0, 20), y: y.slice(0, 20) }; // 400 entries: fits the dense solver
  const sinkhorn = { solver: 'sinkhorn', reg: 0.05, tol: 1e-11, maxIter: 100_000, method: 'log' };

  it('online: true equals the dense solver, with a top-k sparse plan', async () => {
    const dense = await post('/v1/ot/plan', {
      ...small,
      scaling: 'max',
      solver: sinkhorn,
      output: { plan: 'dense' },
    });
    expect(dense.statusCode, dense.body).toBe(200);
    const online = await post('/v1/ot/plan', {
      ...small,
      scaling: 'max',
      solver: { ...sinkhorn, online: true },
      output: { topK: 2 },
    });
    expect(online.statusCode, online.body).toBe(200);
    const d = dense.json();
    const o = online.json();
    expect(o.backend).toMatch(/^cpu/);
    expect(d.backend).toBeUndefined();
    expect(o.converged).toBe(true);
    expect(o.costScale).toBe(d.costScale);
    expect(Math.abs(o.cost - d.cost)).toBeLessThan(1e-9);
    expect(maxDiff(o.f, d.f)).toBeLessThan(1e-9);
    expect(maxDiff(o.g, d.g)).toBeLessThan(1e-9);
    // The two largest entries of every row of the dense plan.
    expect(o.plan.format).toBe('sparse');
    expect(o.plan.nnz).toBe(40);
    for (let k = 0; k < o.plan.nnz; k++) {
      const i = o.plan.rows[k];
      const row = d.plan.data.slice(i * 20, i * 20 + 20) as number[];
      const second = [...row].sort((p, q) => q - p)[1];
      const value = row[o.plan.cols[k]];
      expect(value).toBeGreaterThanOrEqual(second);
      expect(Math.abs(o.plan.values[k] - value)).toBeLessThan(1e-12);
    }
  });

  it('point clouds above OT_MAX_ENTRIES run online by default; OT_ONLINE_MAX_POINTS bounds them', async () => {
    const auto = await post('/v1/ot/distance', { x, y, solver: { solver: 'sinkhorn', reg: 0.1 } });
    expect(auto.statusCode, auto.body).toBe(200);
    expect(auto.json().backend).toMatch(/^cpu/);
    expect(auto.json().converged).toBe(true);
    // Without a sparse request, /plan answers without a plan and says how to get one.
    const plan = await post('/v1/ot/plan', { x, y, solver: { solver: 'sinkhorn', reg: 0.1 } });
    expect(plan.json().plan).toBeUndefined();
    expect(plan.json().warnings.join()).toMatch(/output.topK or output.threshold/);
    // What online cannot do keeps the dense limit when online was not asked for (413, not 422).
    for (const extra of [{ cost: 'cityblock' }, { output: { plan: 'dense' } }]) {
      const res = await post('/v1/ot/plan', { x, y, solver: { solver: 'sinkhorn', reg: 0.1 }, ...extra });
      expect(res.statusCode, res.body).toBe(413);
      expect(res.json().error.message).toMatch(/OT_MAX_ENTRIES/);
    }
    // Opting out keeps the dense limit; other solvers keep it too.
    for (const solver of [{ solver: 'sinkhorn', reg: 0.1, online: false }, { solver: 'emd' }]) {
      const res = await post('/v1/ot/distance', { x, y, solver });
      expect(res.statusCode).toBe(413);
      expect(res.json().error.code).toBe('TW_PROBLEM_TOO_LARGE');
    }
    const big = await post('/v1/ot/distance', {
      x: cloud(rng, 41, 2),
      y,
      solver: { solver: 'sinkhorn', reg: 0.1 },
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.message).toMatch(/OT_ONLINE_MAX_POINTS = 40/);
  });

  it('a threshold-only sparse plan is bounded by OT_MAX_ENTRIES too (413), as a top-k one is', async () => {
    // 30 x 25 = 750 pairs, every one above a threshold of 1e-300: more entries than OT_MAX_ENTRIES = 700.
    const res = await post('/v1/ot/plan', {
      x,
      y,
      scaling: 'max',
      solver: { solver: 'sinkhorn', reg: 0.05 },
      output: { plan: 'sparse', threshold: 1e-300 },
    });
    expect(res.statusCode, res.body).toBe(413);
    expect(res.json().error.code).toBe('TW_PROBLEM_TOO_LARGE');
    expect(res.json().error.message).toMatch(/OT_MAX_ENTRIES/);
  });

  it('what online cannot do is a coded 422', async () => {
    const online = { solver: 'sinkhorn', reg: 0.1, online: true };
    const cases: [object, RegExp][] = [
      [
        {
          C: [
            [0, 1],
            [1, 0],
          ],
          solver: online,
        },
        /give x and y instead of C/,
      ],
      [{ x, y, cost: 'cityblock', solver: online }, /not 'cityblock'/],
      [{ x, y, scaling: 'median', solver: online }, /median/],
      [{ x, y, solver: online, output: { plan: 'dense' } }, /never builds a dense plan/],
      [{ x, y, solver: online, output: { plan: 'sparse' } }, /output.topK or a positive output.threshold/],
    ];
    for (const [payload, message] of cases) {
      const res = await post('/v1/ot/plan', payload);
      expect(res.statusCode, res.body).toBe(422);
      expect(res.json().error.code).toBe('TW_ONLINE_UNSUPPORTED');
      expect(res.json().error.message).toMatch(message);
    }
    // A sparse plan larger than OT_MAX_ENTRIES is refused before any work.
    const huge = await post('/v1/ot/plan', { x, y, solver: online, output: { topK: 25 } });
    expect(huge.statusCode).toBe(413);
  });

  it('GraphQL otPlan/otDistance and jobs give the REST answer', async () => {
    const payload = { ...small, solver: { ...sinkhorn, online: true }, output: { threshold: 1e-3 } };
    const rest = (await post('/v1/ot/plan', payload)).json();
    expect(rest.plan.nnz).toBeGreaterThan(0);
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($x: [[Float!]!], $y: [[Float!]!], $p: JSON) { otPlan(input: { x: $x, y: $y, solver: SINKHORN, params: $p, threshold: 0.001 }) { cost backend f plan { nnz values } } ' +
          'otDistance(input: { x: $x, y: $y, solver: SINKHORN, params: $p, topK: 1 }) { cost plan { nnz } } }',
        variables: { ...small, p: payload.solver },
      },
    });
    expect(gql.statusCode, gql.body).toBe(200);
    const data = gql.json().data;
    expect(data.otPlan.cost).toBe(rest.cost);
    expect(data.otPlan.backend).toBe(rest.backend);
    expect(data.otPlan.f).toEqual(rest.f);
    expect(data.otPlan.plan.values).toEqual(rest.plan.values);
    expect(data.otDistance.cost).toBe(rest.cost);
    expect(data.otDistance.plan).toBeNull();

    const job = await jobResult(app, await post('/v1/ot/plan', { ...payload, async: true }));
    expect(job.json().cost).toBe(rest.cost);
    expect(job.json().plan.values).toEqual(rest.plan.values);
    // The job checks the same limits at submission.
    const refused = await post('/v1/jobs', {
      operation: 'ot.distance',
      input: { C: [[0]], solver: { solver: 'sinkhorn', reg: 1, online: true } },
    });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().error.code).toBe('TW_ONLINE_UNSUPPORTED');
  });
});

/**
 * OT_ONLINE_BACKEND=webgpu: the same request on the WebGPU soft-min (float32; lavapipe here and in CI, which sets
 * TEST_WEBGPU=1 so that a missing adapter fails instead of skipping) equals the CPU answer within 1e-5.
 */
describe('online Sinkhorn on WebGPU through the service', async () => {
  const { getWebGpu } = await import('../../../src/gpu/device.js');
  const gpu = await getWebGpu({ allowSoftware: true });
  const required = process.env.TEST_WEBGPU === '1';
  it.runIf(required)('finds an adapter when TEST_WEBGPU=1', () => {
    expect(gpu.ok ? 'ok' : gpu.reason).toBe('ok');
  });
  it.runIf(gpu.ok)(
    'OT_ONLINE_BACKEND=webgpu answers the CPU backend within 1e-5',
    async () => {
      const rng = new Rng(5);
      const body = {
        x: cloud(rng, 40, 3),
        y: cloud(rng, 33, 3, 0.5),
        scaling: 'max',
        solver: { solver: 'sinkhorn', reg: 0.05, tol: 1e-7, maxIter: 10_000, online: true },
        output: { topK: 1 },
      };
      const answers: Record<string, { backend: string; cost: number; f: number[]; g: number[] }> = {};
      for (const backend of ['cpu', 'webgpu'] as const) {
        const app = await makeApp({ OT_ONLINE_BACKEND: backend, WORKERS: 1 });
        try {
          const res = await app.inject({ method: 'POST', url: '/v1/ot/plan', payload: body });
          expect(res.statusCode, res.body).toBe(200);
          answers[backend] = res.json();
        } finally {
          await app.close();
        }
      }
      const { cpu, webgpu } = answers;
      expect(cpu.backend).toMatch(/^cpu/);
      expect(webgpu.backend).toBe('webgpu');
      expect(Math.abs(webgpu.cost - cpu.cost) / cpu.cost).toBeLessThan(1e-5);
      // Potentials are defined up to a constant shared by f and -g: compare them on the cost's scale (max C = 1).
      const shift = webgpu.f[0] - cpu.f[0];
      expect(
        maxDiff(
          webgpu.f.map((v) => v - shift),
          cpu.f,
        ),
      ).toBeLessThan(1e-5);
      expect(
        maxDiff(
          webgpu.g.map((v) => v + shift),
          cpu.g,
        ),
      ).toBeLessThan(1e-5);
    },
    60_000,
  );
});
