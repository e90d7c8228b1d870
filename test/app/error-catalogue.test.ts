/**
 * Every failure a client can see has a stable code in the catalogue (src/errors.ts): the codes written anywhere in
 * the service's source are all there, and the domain libraries' typed errors map to codes by class.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { domainError, toTweedieError } from '../../src/error-mapping.js';
import { ERROR_CATALOGUE, fail, reviveError } from '../../src/errors.js';
import { ModelLoadError } from '../../src/nn/repository.js';
import { OtInputError } from '../../src/ot/types.js';
import { repoRoot } from '../helpers.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

describe('the error catalogue', () => {
  const entries = Object.entries(ERROR_CATALOGUE);

  it('has one TW_ code per entry, named after it, with an error status and a message', () => {
    const codes = entries.map(([, spec]) => spec.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const [name, spec] of entries) {
      expect(spec.code).toBe(`TW_${name}`);
      expect(spec.statusCode).toBeGreaterThanOrEqual(400);
      expect(spec.statusCode).toBeLessThan(600);
      expect(spec.message.length).toBeGreaterThan(0);
      // A coded error survives the worker boundary with its code and status.
      const revived = reviveError(fail(name as keyof typeof ERROR_CATALOGUE, 'm').toJSON());
      expect([revived.code, revived.statusCode]).toEqual([spec.code, spec.statusCode]);
    }
  });

  it('holds every TW_ code the source writes (src/, routes/)', () => {
    const known = new Set<string>(entries.map(([, spec]) => spec.code));
    const written = new Map<string, string>();
    for (const dir of ['src', 'routes']) {
      for (const file of sourceFiles(path.join(repoRoot, dir))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/['"`](TW_[A-Z0-9_]+)['"`]/g))
          written.set(m[1], path.relative(repoRoot, file));
      }
    }
    expect(written.size).toBeGreaterThan(5);
    const missing = [...written].filter(([code]) => !known.has(code));
    expect(missing, 'codes written in the source but absent from src/errors.ts').toEqual([]);
  });

  it("maps the domain libraries' typed errors by class, not by message", () => {
    const cases: [Error, string, number][] = [
      [new OtInputError('mass differs', 'unbalanced'), 'TW_UNBALANCED_MARGINALS', 422],
      [new OtInputError('overflow', 'range'), 'TW_NUMERIC_RANGE', 422],
      [new OtInputError('too big', 'too-large'), 'TW_PROBLEM_TOO_LARGE', 413],
      [new OtInputError('bad'), 'TW_UNPROCESSABLE', 422],
      [new ModelLoadError('MODEL_NOT_FOUND', 'no such model'), 'TW_MODEL_NOT_FOUND', 404],
      [new ModelLoadError('MODEL_INVALID', 'broken'), 'TW_MODEL_NOT_READY', 503],
    ];
    for (const [err, code, status] of cases) {
      const te = toTweedieError(err);
      expect([te.code, te.statusCode, te.message]).toEqual([code, status, err.message]);
    }
    // A plain Error with a domain error's name is not one: it stays an internal error.
    const impostor = Object.assign(new Error('x'), { name: 'OtInputError', kind: 'unbalanced' });
    expect(domainError(impostor)).toBeUndefined();
    expect(toTweedieError(impostor).code).toBe('TW_INTERNAL');
    // A 4xx from below our code without a more precise entry keeps its status under TW_BAD_REQUEST.
    const teapot = toTweedieError(Object.assign(new Error('short and stout'), { statusCode: 418 }));
    expect([teapot.code, teapot.statusCode]).toEqual(['TW_BAD_REQUEST', 418]);
  });
});
