#!/usr/bin/env bash
# Packs `npm run bench:gpu` for a GPU machine that has no Node, no npm and no network (see ../shared/gpu/README.md):
# ../shared/gpu/pack.sh with sharp (for the real HTTP server), then the bundle is made again with the modules the
# server loads from disk at run time left out of it (graphql and mercurius' @fastify/websocket, required through
# createRequire as the copies mercurius uses; @fastify/swagger-ui, which reads its static files next to itself;
# piscina, which starts its own worker.js next to itself):
# those modules, with everything they need, go to server-modules.tar.xz.
# Run from the project root after `npm ci`; then, on the GPU machine: bash bench/gpu/run-on-device.sh [--quick].
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ../shared/gpu/pack.sh bench/gpu/run.ts --sharp
out=.gpu/node-run
external=(webgpu sharp graphql mercurius @fastify/websocket @fastify/swagger-ui piscina)
npx esbuild bench/gpu/run.ts --bundle --platform=node --format=esm --target=node20 \
  "${external[@]/#/--external:}" --outfile="$out/run.mjs" \
  --banner:js="import { createRequire as __cr } from 'module'; import { fileURLToPath as __fu } from 'url'; import { dirname as __dn } from 'path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);" \
  --log-level=warning
# Every package those three need, following package.json dependencies through the (hoisted) node_modules.
node --input-type=module -e '
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
const seen = new Set();
const packed = new Set();
// Resolves name from the package folder from as Node does: its node_modules, then those of each parent.
const resolve = (name, from) => {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = `${dir}/node_modules/${name}`;
    if (existsSync(`${candidate}/package.json`)) return candidate;
    if (dir === "." || dir === dirname(dir)) return null;
  }
};
const visit = (name, from) => {
  const dir = resolve(name, from);
  if (!dir || seen.has(dir)) return;
  seen.add(dir);
  // A nested package travels inside its top-level folder.
  packed.add(dir.split("/node_modules/").slice(0, 2).join("/node_modules/"));
  const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dep, dir);
};
for (const name of ["graphql", "mercurius", "@fastify/websocket", "@fastify/swagger-ui", "piscina"]) visit(name, ".");
console.log([...packed].join("\n"));
' | tar -cf - -T - | xz -T0 -6 > "$out/server-modules.tar.xz"
du -sh "$out" .gpu/gl
