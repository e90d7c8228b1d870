import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeResultsSection } from '../../bench/results-file.js';

describe('bench/RESULTS.md sections', () => {
  it('appends a new section, then replaces only that section on a rerun', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tw-results-')), 'RESULTS.md');
    writeFileSync(file, '# Benchmark results\n\n<!-- a:begin -->\nold a\n<!-- a:end -->\n\ntail text\n');
    writeResultsSection('b', '## B\nfirst', file);
    writeResultsSection('b', '## B\nsecond\n', file);
    writeResultsSection('a', 'new a', file);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(
      '# Benchmark results\n\n<!-- a:begin -->\nnew a\n<!-- a:end -->\n\ntail text\n\n<!-- b:begin -->\n## B\nsecond\n<!-- b:end -->\n',
    );
  });
});
