/**
 * fast-check arbitraries for fuzzing the HTTP surface, derived from the service's own OpenAPI document (which
 * fastify-type-provider-zod generates from the zod schemas), so that a route added tomorrow is fuzzed without
 * anyone writing its generator. zod-fast-check would derive them from the zod schemas directly, but it supports
 * zod 3 and fast-check 3 only (this project has zod 4 and fast-check 4); the JSON Schema in /openapi.json is the
 * same description, minus refinements (finite, positive, rectangular), which the mutations probe anyway.
 *
 * Two families: `validShaped(schema)` (what the schema says a request looks like, with sizes and ranges kept
 * small so that requests reach the solvers quickly) and `mutate(value)` (one part of a valid value broken: a key
 * removed, a value replaced by something hostile, an array lengthened, deep nesting, an unknown key).
 */
import fc from 'fast-check';

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  default?: unknown;
  additionalProperties?: boolean | JsonSchema;
  $ref?: string;
  nullable?: boolean;
}

/**
 * Property names whose valid values must stay in a narrow band for the fuzz run to stay fast and honest: a
 * generated `timeoutMs: 100` would turn slow-but-valid work into a (correct) 504, and `maxIter: 10^7` or
 * `steps: 1000` would spend the run's time budget on one request.
 */
const HINTS: Record<string, fc.Arbitrary<unknown>> = {
  timeoutMs: fc.integer({ min: 5000, max: 20_000 }),
  maxIter: fc.integer({ min: 1, max: 500 }),
  sinkhornIterations: fc.integer({ min: 0, max: 50 }),
  maxNewtonIterations: fc.integer({ min: 0, max: 20 }),
  checkEvery: fc.integer({ min: 1, max: 20 }),
  steps: fc.integer({ min: 2, max: 6 }),
  masks: fc.integer({ min: 1, max: 3 }),
  reg: fc.double({ min: 0.05, max: 5, noNaN: true }),
  regM: fc.double({ min: 0.1, max: 10, noNaN: true }),
  tol: fc.constantFrom(1e-9, 1e-6, 1e-3),
  cgTol: fc.constantFrom(1e-10, 1e-6),
  k: fc.integer({ min: 1, max: 4 }),
  size: fc.integer({ min: 8, max: 32 }),
  width: fc.integer({ min: 8, max: 32 }),
};

const MAX_ITEMS = 5;

function number(s: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const lo = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + (integer ? 1 : 1e-3) : 0);
  let hi =
    s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - (integer ? 1 : 1e-3) : lo + 10);
  hi = Math.min(hi, lo + (integer ? 64 : 10));
  if (integer) return fc.integer({ min: Math.ceil(lo), max: Math.max(Math.ceil(lo), Math.floor(hi)) });
  return fc.oneof(
    fc.double({ min: lo, max: Math.max(lo, hi), noNaN: true, noDefaultInfinity: true }),
    fc.integer({ min: Math.ceil(lo), max: Math.max(Math.ceil(lo), Math.floor(hi)) }),
  );
}

function string(s: JsonSchema): fc.Arbitrary<string> {
  if (s.pattern) {
    try {
      return fc.stringMatching(new RegExp(s.pattern)).filter((v) => v.length <= (s.maxLength ?? 64));
    } catch {
      /* a pattern fast-check cannot invert: plain strings */
    }
  }
  return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 16, 16) });
}

/** Values the schema describes (refinements aside), small. */
export function validShaped(s: JsonSchema, depth = 0): fc.Arbitrary<unknown> {
  if (depth > 8) return fc.constant(null);
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return fc.oneof(...alts.map((a) => validShaped(a, depth + 1)));
  if (s.allOf?.length) return validShaped(Object.assign({}, ...s.allOf), depth + 1);
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  switch (type) {
    case 'object': {
      const props = s.properties ?? {};
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) record[k] = HINTS[k] ?? validShaped(v, depth + 1);
      if (Object.keys(record).length === 0)
        return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 });
      return fc.record(record, { requiredKeys: (s.required ?? []).filter((k) => k in record) });
    }
    case 'array': {
      if (s.prefixItems) return fc.tuple(...s.prefixItems.map((p) => validShaped(p, depth + 1)));
      const min = s.minItems ?? 0;
      const max = Math.max(min, Math.min(s.maxItems ?? MAX_ITEMS, min + MAX_ITEMS));
      return fc.array(validShaped(s.items ?? {}, depth + 1), { minLength: min, maxLength: max });
    }
    case 'number':
      return number(s, false);
    case 'integer':
      return number(s, true);
    case 'string':
      return string(s);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      // No type (z.unknown()): anything JSON.
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Numbers and look-alikes a careless parser or solver would mishandle. */
export const hostileScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '0x10', '', ' 1', 'null', '1,5', '__proto__'),
  fc.constantFrom(1e308, -1e308, Number.MAX_VALUE, 5e-324, 0, -0, -1, 2 ** 53 + 1, 1e-320),
  fc.constantFrom(null, true, false, {}, []),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 20 }),
);

/**
 * A placeholder for arrays and objects `depth` deep: `toJsonText` writes it out. Values that deep cannot be built
 * as objects here (JSON.stringify and fast-check's printer recurse and would overflow the test's own stack), but
 * the server must survive them as text.
 */
export function nest(depth: number): unknown {
  return { __deep: depth };
}

/** JSON text of a value, with `nest` placeholders expanded to alternating `{"a":[...]}` nesting. */
export function toJsonText(value: unknown): string {
  const text = JSON.stringify(value) ?? '';
  return text.replace(/\{"__deep":(\d+)\}/g, (_, d) => {
    const depth = Number(d);
    const open: string[] = [];
    const close: string[] = [];
    for (let i = 0; i < depth; i++) {
      open.push(i % 2 ? '[' : '{"a":');
      close.push(i % 2 ? ']' : '}');
    }
    return `${open.join('')}1${close.reverse().join('')}`;
  });
}

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileScalar },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 5000 }).map((d) => nest(d)) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1000, max: 50_000 }).map((n) => Array.from({ length: n }, () => 1)),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 100_000 }).map((n) => 'x'.repeat(n)) },
);

type Path = (string | number)[];

/** Every path into a JSON value (the root included). */
export function pathsOf(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (out.length > 500) return out;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) pathsOf(v[i], [...prefix, i], out);
  } else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out);
  }
  return out;
}

function clone<T>(v: T): T {
  return v === undefined ? v : JSON.parse(JSON.stringify(v));
}

export type MutationKind = 'replace' | 'delete' | 'duplicate' | 'wrap' | 'unknown-key' | 'stringify';

export interface Mutation {
  at: number;
  kind: MutationKind;
  value: unknown;
}

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom<MutationKind>(
    'replace',
    'replace',
    'replace',
    'delete',
    'duplicate',
    'wrap',
    'unknown-key',
    'stringify',
  ),
  value: hostileValue,
});

/** A copy of `base` with one part broken as `m` says. */
export function mutate(base: unknown, m: Mutation): unknown {
  const value = clone(base);
  const paths = pathsOf(value);
  const path = paths[m.at % paths.length];
  if (path.length === 0) {
    if (m.kind === 'wrap') return [value];
    if (m.kind === 'stringify') return JSON.stringify(value);
    return m.kind === 'delete' ? undefined : m.value;
  }
  const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], value);
  const key = path[path.length - 1];
  switch (m.kind) {
    case 'replace':
      parent[key] = m.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      break;
    case 'duplicate':
      // Lengths that no longer match (a marginal longer than its points, a ragged row).
      if (Array.isArray(parent)) parent.push(clone(parent[key as number]));
      else parent[key] = [parent[key], parent[key]];
      break;
    case 'wrap':
      parent[key] = [parent[key]];
      break;
    case 'unknown-key':
      if (Array.isArray(parent)) parent.push(m.value);
      else parent[`x-${String(key)}`] = m.value;
      break;
    case 'stringify':
      parent[key] = JSON.stringify(parent[key]) ?? 'undefined';
      break;
  }
  return value;
}
