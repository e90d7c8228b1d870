/**
 * Builds the browser console into web/dist: one ES-module bundle (esbuild, from web/src/main.ts), the Transport
 * page's worker (web/src/ot-large-worker.ts), and the static files of web/public (index.html, styles, example
 * images). No CDN: everything the console loads is in web/dist.
 *
 *   node web/build.mjs            (also run by `npm run build`)
 *
 * Plain JavaScript so that it runs before anything is compiled, with nothing but esbuild.
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const webDir = path.dirname(fileURLToPath(import.meta.url));

/** Builds into `outDir` (default web/dist); returns the output folder. */
export async function buildConsole(outDir = path.join(webDir, 'dist')) {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  cpSync(path.join(webDir, 'public'), outDir, { recursive: true });
  await build({
    entryPoints: [path.join(webDir, 'src', 'main.ts')],
    outfile: path.join(outDir, 'console.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    // No source map: it would publish the console's sources (comments included) to anyone; debug with a local build.
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  // The Transport page's worker for large point clouds: its own file (workers load by URL), a classic script.
  await build({
    entryPoints: [path.join(webDir, 'src', 'ot-large-worker.ts')],
    outfile: path.join(outDir, 'ot-large-worker.js'),
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return outDir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildConsole(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`console built in ${path.relative(process.cwd(), out) || '.'}`);
}
