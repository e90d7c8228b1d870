/**
 * KServe / Open Inference Protocol v2 probe and metadata aliases, for inference platforms that probe these paths:
 * they map onto our own state (src/health.ts, the model registry) and add no behaviour of their own.
 * - GET /v2/health/live, /v2/health/ready: /livez and /readyz (public, like them), `{live}` / `{ready}`, 503 when false;
 * - GET /v2/models/{name}[/versions/{version}]: the model's metadata (behind the API key, like /v1/models);
 * - GET /v2/models/{name}[/versions/{version}]/ready: `{name, ready}`, 503 when the model is not ready.
 * Inference itself (POST .../infer) is not offered: our routes take images, not raw tensors.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { fail } from '../src/errors.js';
import { healthReport } from '../src/health.js';
import { MODEL_ID_PATTERN } from '../src/nn/manifest.js';
import type { ModelStatus } from '../src/plugins/app/models.js';

const exempt = { pressureExempt: true };
const modelParams = z.object({
  name: z.string().regex(MODEL_ID_PATTERN, 'lowercase letters, digits, . _ - (max 64)'),
  version: z.string().regex(MODEL_ID_PATTERN).optional(),
});

/** OIP platform names for the TF.js formats. */
const PLATFORM = { layers: 'tensorflowjs_layers', graph: 'tensorflowjs_graph' } as const;

const routes: FastifyPluginAsyncZod = async (fastify) => {
  fastify.get(
    '/v2/health/live',
    {
      config: exempt,
      schema: { tags: ['health'], summary: 'Open Inference Protocol v2 liveness (as /livez)' },
    },
    async () => ({ live: true }),
  );

  fastify.get(
    '/v2/health/ready',
    {
      config: exempt,
      schema: {
        tags: ['health'],
        summary: 'Open Inference Protocol v2 readiness (as /readyz): 503 when not ready',
      },
    },
    async (_request, reply) => {
      const report = healthReport(fastify);
      if (!report.ready) reply.code(503).header('retry-after', '5');
      return { ready: report.ready };
    },
  );

  const find = (params: z.infer<typeof modelParams>): ModelStatus => {
    const m = fastify.models.get(params.name, params.version);
    if (!m) {
      throw fail('MODEL_NOT_FOUND', `No model '${params.name}${params.version ? `@${params.version}` : ''}'`);
    }
    return m;
  };

  const metadata = async (request: { params: z.infer<typeof modelParams> }) => {
    const m = find(request.params);
    const versions = fastify.models
      .list()
      .filter((x) => x.name === m.name)
      .map((x) => x.version);
    const manifest = m.manifest;
    return {
      name: m.name,
      versions,
      platform: manifest ? PLATFORM[manifest.format] : 'unknown',
      inputs: manifest
        ? [
            {
              name: 'input',
              datatype: 'FP32',
              // OIP marks a free dimension with -1.
              shape: manifest.inputShape.map((d) => d ?? -1),
            },
          ]
        : [],
      // The manifest does not describe the outputs.
      outputs: [],
    };
  };
  const summary = 'Open Inference Protocol v2 model metadata (from the manifest)';
  fastify.get('/v2/models/:name', { schema: { tags: ['models'], summary, params: modelParams } }, metadata);
  fastify.get(
    '/v2/models/:name/versions/:version',
    { schema: { tags: ['models'], summary, params: modelParams } },
    metadata,
  );

  const ready = async (
    request: { params: z.infer<typeof modelParams> },
    reply: { code(n: number): unknown; header(k: string, v: string): unknown },
  ) => {
    const m = find(request.params);
    const ok = m.state === 'ready';
    if (!ok) {
      reply.code(503);
      reply.header('retry-after', '5');
    }
    return { name: m.name, version: m.version, ready: ok, state: m.state };
  };
  const readySummary =
    'Open Inference Protocol v2 model readiness: 200 when loaded and warmed, 503 otherwise';
  fastify.get(
    '/v2/models/:name/ready',
    { schema: { tags: ['models'], summary: readySummary, params: modelParams } },
    ready,
  );
  fastify.get(
    '/v2/models/:name/versions/:version/ready',
    { schema: { tags: ['models'], summary: readySummary, params: modelParams } },
    ready,
  );
};

export default routes;
