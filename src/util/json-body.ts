/**
 * The JSON body parser of every route (REST and GraphQL). Like Fastify's own (secure-json-parse), it refuses
 * bodies that carry a `__proto__` key or a `constructor.prototype`, which could alter object prototypes wherever
 * the value is later merged or copied; unlike it, it says so: 400 TW_VALIDATION naming the key and where it is,
 * instead of "Body is not valid JSON". Refused rather than removed: no field of the API has such a name, so the key
 * is a client bug or a probe, and silently dropping it would hide both.
 */
import { fail } from '../errors.js';

// secure-json-parse's screens: a key "__proto__" or "constructor", its letters possibly \u-escaped. Only a body that
// matches is walked.
const SUSPECT_PROTO =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const SUSPECT_CONSTRUCTOR =
  /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;

export function parseJsonBody(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) throw fail('BAD_JSON', 'The request body is empty');
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw fail('BAD_JSON');
  }
  if (SUSPECT_PROTO.test(body) || SUSPECT_CONSTRUCTOR.test(body)) {
    const path = forbiddenKeyPath(value);
    if (path !== undefined) {
      throw fail('VALIDATION', `JSON keys named __proto__ (or constructor.prototype) are refused: ${path}`, {
        details: [{ path, message: 'forbidden key', code: 'forbidden_key' }],
      });
    }
  }
  return value;
}

/** Where the first forbidden key is (`a.0.__proto__`), or undefined. Iterative: a body may nest deeply. */
function forbiddenKeyPath(root: unknown): string | undefined {
  const stack: [unknown, string][] = [[root, '']];
  const at = (path: string, key: string) => (path ? `${path}.${key}` : key);
  while (stack.length > 0) {
    const [node, path] = stack.pop() as [unknown, string];
    if (node === null || typeof node !== 'object') continue;
    if (Object.hasOwn(node, '__proto__')) return at(path, '__proto__');
    const ctor = (node as { constructor?: unknown }).constructor;
    if (
      Object.hasOwn(node, 'constructor') &&
      ctor !== null &&
      typeof ctor === 'object' &&
      Object.hasOwn(ctor, 'prototype')
    ) {
      return at(path, 'constructor.prototype');
    }
    for (const [k, v] of Object.entries(node))
      if (v !== null && typeof v === 'object') stack.push([v, at(path, k)]);
  }
  return undefined;
}
