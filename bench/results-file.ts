/**
 * bench/RESULTS.md is shared by every benchmark: each owns one section between `<!-- name:begin -->` and
 * `<!-- name:end -->`, replaced in place (or appended the first time), so a rerun never touches the others.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = join(dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');

export function sectionMarkers(name: string): { begin: string; end: string } {
  return { begin: `<!-- ${name}:begin -->`, end: `<!-- ${name}:end -->` };
}

/** Replaces (or appends) the section `name` of the results file with `markdown`. */
export function writeResultsSection(name: string, markdown: string, file = RESULTS_FILE): void {
  const { begin, end } = sectionMarkers(name);
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const start = current.indexOf(begin);
  const stop = current.indexOf(end);
  const next =
    start >= 0 && stop > start
      ? current.slice(0, start) + block + current.slice(stop + end.length)
      : `${current.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}
