/**
 * The model repository: every model with its state, and one model's manifest.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { fail } from '../../../src/errors.js';
import { healthReport } from '../../../src/health.js';
import { type ModelStatus, modelTier } from '../../../src/plugins/app/models.js';

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function view(m: ModelStatus) {
  return {
    name: m.name,
    version: m.version,
    state: m.state,
    required: m.required,
    isDefault: m.isDefault,
    tier: modelTier(m),
    ...(m.reason ? { reason: m.reason } : {}),
    ...(m.loadMs !== undefined ? { loadMs: m.loadMs } : {}),
    manifest: m.manifest ?? null,
  };
}

const routes: FastifyPluginAsyncZod = async (fastify) => {
  fastify.get(
    '/',
    { schema: { tags: ['models'], summary: 'List the models, their state and the TF.js backend in use' } },
    async () => {
      const h = healthReport(fastify);
      return {
        backend: h.backend,
        native: h.native,
        adapter: h.adapter,
        backendTried: h.backendTried,
        gpuDeviceLost: h.gpuDeviceLost,
        tier: fastify.models.tier(),
        models: fastify.models.list().map(view),
      };
    },
  );

  fastify.post(
    '/reload',
    {
      schema: {
        tags: ['models'],
        summary:
          'Rescan MODELS_DIR: new versions are loaded and warmed in every compute worker, then become the default; ' +
          'versions whose folder is gone are freed. Answers when done, with what changed.',
      },
    },
    async () => fastify.models.reload(),
  );

  fastify.get(
    '/:name',
    {
      schema: {
        tags: ['models'],
        summary: 'One model (its default version, or ?version=)',
        params: z.object({ name: z.string().regex(NAME, 'lowercase letters, digits, . _ - (max 64)') }),
        querystring: z.object({ version: z.string().regex(NAME).optional() }),
      },
    },
    async (request) => {
      const m = fastify.models.get(request.params.name, request.query.version);
      if (!m) throw fail('MODEL_NOT_FOUND', `No model '${request.params.name}'`);
      const versions = fastify.models
        .list()
        .filter((x) => x.name === m.name)
        .map((x) => ({ version: x.version, state: x.state }));
      return { ...view(m), versions };
    },
  );
};

export default routes;
