/**
 * JSON text produced piece by piece, for answers too large to serialise in one go on the event loop: a result of
 * millions of numbers is written a slice of numbers at a time. The text is what JSON.stringify writes, except that
 * typed arrays are written as arrays of numbers (JSON.stringify writes them as objects keyed by index).
 *
 * - `jsonChunks` yields the text in pieces, `jsonStream` streams them (a job's result download), the loop turning
 *   between them;
 * - `boundedJson` joins them into bytes and stops as soon as they pass a limit (the OT task serialises its answer in
 *   the worker, so the main thread only writes bytes, and gives up early on an answer too large to send).
 */
import { Readable } from 'node:stream';

/** Numbers per piece of a long array (about 0.1 to 0.5 MB of text). */
const SLICE = 16_384;

type NumberArray = ArrayLike<number> & { slice(start: number, end: number): ArrayLike<number> };

function isNumberArray(v: unknown): v is NumberArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/** The JSON text of `value`, in pieces; each piece is at most about SLICE numbers long. */
export function* jsonChunks(value: unknown): Generator<string> {
  yield* write(value);
}

function* write(v: unknown): Generator<string> {
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON(): unknown }).toJSON();
  }
  if (isNumberArray(v)) {
    yield* numbers(v);
    return;
  }
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'number')) {
      yield* numbers(v);
      return;
    }
    yield '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) yield ',';
      const x = v[i];
      yield* write(x === undefined || typeof x === 'function' || typeof x === 'symbol' ? null : x);
    }
    yield ']';
    return;
  }
  if (v !== null && typeof v === 'object') {
    yield '{';
    let first = true;
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
      yield `${first ? '' : ','}${JSON.stringify(k)}:`;
      first = false;
      yield* write(x);
    }
    yield '}';
    return;
  }
  yield JSON.stringify(v) ?? 'null';
}

function* numbers(a: ArrayLike<number> & { slice(start: number, end: number): ArrayLike<number> }) {
  if (a.length <= SLICE) {
    yield JSON.stringify(Array.isArray(a) ? a : Array.from(a));
    return;
  }
  yield '[';
  for (let i = 0; i < a.length; i += SLICE) {
    const part = a.slice(i, i + SLICE);
    const text = JSON.stringify(Array.isArray(part) ? part : Array.from(part));
    yield `${i > 0 ? ',' : ''}${text.slice(1, -1)}`;
  }
  yield ']';
}

/**
 * `jsonChunks` as a stream that lets the event loop turn between slices, whatever reads it (a socket that never
 * pushes back, or an in-process reader, would otherwise drain the whole text in one synchronous run).
 */
export function jsonStream(value: unknown): Readable {
  return Readable.from(
    (async function* () {
      let bytes = 0;
      for (const piece of jsonChunks(value)) {
        yield piece;
        bytes += piece.length;
        if (bytes >= YIELD_EVERY_BYTES) {
          bytes = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    })(),
  );
}
const YIELD_EVERY_BYTES = 1024 * 1024;

export class JsonTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`JSON text over ${limit} bytes`);
  }
}

/** The length of `value`'s JSON text (UTF-16 units), or JsonTooLargeError as soon as it passes `maxBytes`. */
export function jsonLength(value: unknown, maxBytes: number): number {
  let length = 0;
  for (const piece of jsonChunks(value)) {
    length += piece.length;
    if (length > maxBytes) throw new JsonTooLargeError(maxBytes);
  }
  return length;
}

/**
 * The UTF-8 bytes of `value`'s JSON text, or JsonTooLargeError as soon as the text passes `maxBytes` (counted in
 * UTF-16 units while writing, which equals bytes for the ASCII of numbers and keys; checked in bytes at the end).
 */
export function boundedJson(value: unknown, maxBytes: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  for (const piece of jsonChunks(value)) {
    length += piece.length;
    if (length > maxBytes) throw new JsonTooLargeError(maxBytes);
    parts.push(piece);
  }
  const bytes = Buffer.from(parts.join(''), 'utf8');
  if (bytes.length > maxBytes) throw new JsonTooLargeError(maxBytes);
  return bytes;
}
