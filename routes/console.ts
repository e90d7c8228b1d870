/**
 * The browser console (web/, built into web/dist by `npm run build`): static files under /console/ (served with
 * @fastify/static), `/` redirecting there, and each model's sample grid (models/<name>/<version>/samples.png)
 * for the Models page. The console calls only the public API; nothing here computes anything.
 * When web/dist is missing (sources not built), /console/ answers a coded 404 that says how to build it.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { type Config, resolvedModelsDir } from '../src/config.js';
import { fail } from '../src/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** web/dist next to the sources (tsx, vitest: routes/ -> ..) or next to the compiled output (dist/routes -> ../..). */
export function consoleDir(): string | undefined {
  return [path.resolve(here, '../web/dist'), path.resolve(here, '../../web/dist')].find((dir) =>
    existsSync(path.join(dir, 'index.html')),
  );
}

export default async function consoleRoutes(fastify: FastifyInstance, opts: { config: Config }) {
  const root = consoleDir();
  const hidden = { schema: { hide: true } };

  fastify.get('/', hidden, async (_request, reply) => reply.redirect('/console/'));

  if (root) {
    await fastify.register(fastifyStatic, {
      root,
      prefix: '/console/',
      index: false,
      // Only the built files: the bundle, styles, and the example images. No dotfiles, and no source map even if an
      // older or local build left one there (it would publish the console's sources).
      allowedPath: (pathName) =>
        !pathName.split('/').some((part) => part.startsWith('.')) && !pathName.endsWith('.map'),
      cacheControl: true,
      maxAge: '1h',
    });
  }

  // The page itself: /console (no slash) is redirected so that the page's relative URLs resolve under /console/.
  fastify.get('/console/', hidden, async (request, reply) => {
    if (!request.url.split('?')[0].endsWith('/')) return reply.redirect('/console/');
    if (!root)
      throw fail('NOT_FOUND', 'The console is not built: run `npm run build` (or `node web/build.mjs`)');
    return reply.sendFile('index.html', { maxAge: 0, immutable: false });
  });

  fastify.get<{ Params: { name: string; version: string } }>(
    '/console/models/:name/:version/samples.png',
    hidden,
    async (request, reply) => {
      const { name, version } = request.params;
      if (!NAME.test(name) || !NAME.test(version)) throw fail('VALIDATION', 'Bad model name or version');
      const file = path.join(resolvedModelsDir(opts.config), name, version, 'samples.png');
      const bytes = await readFile(file).catch(() => null);
      if (!bytes) throw fail('NOT_FOUND', `Model ${name}@${version} has no sample grid`);
      return reply.type('image/png').header('cache-control', 'no-cache').send(bytes);
    },
  );
}
