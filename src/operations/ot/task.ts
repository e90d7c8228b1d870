/**
 * Optimal-transport tasks in a worker: the request (src/operations/ot/schema.ts) is an OT problem
 * (src/ot/problem.ts), solved by the library (src/ot/solve.ts); a synchronous answer is serialised here within
 * MAX_RESPONSE_BYTES (413 beyond) so the main thread never converts or stringifies millions of numbers.
 */
import type { HandlerContext } from '../../compute/handlers/context.js';
import { mongeGap, sinkhornDivergence } from '../../ot/divergence.js';
import { pointCloud } from '../../ot/geometry.js';
import { assertFiniteResult } from '../../ot/range.js';
import { solve as solveProblem } from '../../ot/solve.js';
import { planJsonBytes, planWithinLimit } from './output.js';
import type { MongeGapRequest, OtPlanRequest, SinkhornDivergenceRequest } from './schema.js';

export type { OtPlanOutput } from '../../ot/solve.js';

export type OtTaskInput =
  | {
      op: 'plan';
      request: OtPlanRequest;
      withPlan: boolean;
      /**
       * A synchronous answer, 413 when its JSON text passes maxBytes: as the text's bytes (OtPlanJson, REST), or as
       * the output once its size is checked (GraphQL serialises it).
       */
      json?: { maxBytes: number; as: 'bytes' | 'object' };
    }
  | { op: 'sinkhorn-divergence'; request: SinkhornDivergenceRequest }
  | { op: 'monge-gap'; request: MongeGapRequest };

/** Every OT answer (REST, GraphQL, jobs) leaves the worker through here: never with a NaN or an infinity. */
export async function solve(input: OtTaskInput, ctx: HandlerContext) {
  if (input.op === 'plan') return solveOp(input, ctx);
  return assertFiniteResult(await solveOp(input, ctx), `ot ${input.op}`);
}

async function solveOp(input: OtTaskInput, ctx: HandlerContext) {
  switch (input.op) {
    case 'plan': {
      // Checked here, before serialisation: REST answers leave as bytes, where a NaN would be written as null.
      const out = assertFiniteResult(
        await solveProblem(input.request, {
          withPlan: input.withPlan,
          progress: ctx.progress,
          options: ctx.options,
        }),
        'ot plan',
      );
      if (!input.json) return out;
      return input.json.as === 'bytes'
        ? planJsonBytes(out, input.json.maxBytes)
        : planWithinLimit(out, input.json.maxBytes);
    }
    case 'sinkhorn-divergence': {
      const r = input.request;
      return sinkhornDivergence(pointCloud(r.x), pointCloud(r.y), r.a, r.b, r.reg, {
        cost: r.cost,
        p: r.p,
        maxIter: r.maxIter,
        tol: r.tol,
        onProgress: ctx.progress,
      });
    }
    case 'monge-gap': {
      const r = input.request;
      return mongeGap(pointCloud(r.x), pointCloud(r.Tx), {
        eps: r.reg,
        cost: r.cost,
        p: r.p,
        exact: r.exact,
        maxIter: r.maxIter,
        tol: r.tol,
        onProgress: ctx.progress,
      });
    }
  }
}
