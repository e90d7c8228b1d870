/**
 * The module graph of the service (src/, routes/) has no cycle: every static value import (`import ... from`,
 * `export ... from`, side-effect imports) is an edge; `import type` (erased) and lazy `import()` (the worker's task
 * table loads handlers on demand) are not. The layering itself (domain never imports the serving layer, jobs never
 * import plugins) is enforced by Biome's noRestrictedImports overrides in biome.json.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return full.endsWith('.ts') && !full.endsWith('.d.ts') ? [full] : [];
  });
}

/** The relative modules a file imports for their values (not `import type`, not `import()`). */
function valueImports(file: string, text: string): string[] {
  // Drop comments so that an example in a doc comment is not an edge.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs: string[] = [];
  const statement = /(?:^|;|\n)\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/g;
  for (const m of code.matchAll(statement)) {
    const [, , typeOnly, clause, spec] = m;
    if (typeOnly) continue;
    // `import { type A, type B } from` is erased too.
    const names = /^\{([\s\S]*)\}$/.exec(clause.trim());
    if (names?.[1].split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '))) continue;
    specs.push(spec);
  }
  for (const m of code.matchAll(/(?:^|;|\n)\s*import\s+['"]([^'"]+)['"]/g)) specs.push(m[1]);
  return specs
    .filter((s) => s.startsWith('.'))
    .map((s) => path.resolve(path.dirname(file), s.replace(/\.js$/, '.ts')))
    .filter((p) => existsSync(p));
}

/** The cycles of a directed graph (one per strongly connected component with more than one node or a self-loop). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe('the import graph', () => {
  const files = ['src', 'routes'].flatMap((d) => sourceFiles(path.join(repoRoot, d)));
  const graph = new Map(files.map((f) => [f, valueImports(f, readFileSync(f, 'utf8'))]));

  it('reads the edges it should (a value import, not a type import)', () => {
    const edges = valueImports(
      path.join(repoRoot, 'src/operations/x.ts'),
      "import type { A } from './spec.js';\nimport { type B } from './run.js';\nimport { C } from './http.js';\nimport './index.js';\n",
    ).map((p) => path.relative(repoRoot, p));
    expect(edges).toEqual(['src/operations/http.ts', 'src/operations/index.ts']);
    expect([...graph.values()].reduce((n, e) => n + e.length, 0)).toBeGreaterThan(100);
  });

  it('has no cycle', () => {
    const found = cycles(graph).map((c) => c.map((f) => path.relative(repoRoot, f)).sort());
    expect(found).toEqual([]);
  });
});
