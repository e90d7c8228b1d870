/**
 * Zero-copy hand-over of typed arrays between threads: collect the ArrayBuffers inside a value so they can be put
 * in a transferList instead of being cloned. Only buffers that the typed array owns entirely are moved (a view on a
 * larger or shared buffer would take its neighbours along), and each buffer once.
 */
export function collectTransferables(
  value: unknown,
  out: ArrayBuffer[] = [],
  seen = new Set<unknown>(),
): ArrayBuffer[] {
  if (value === null || typeof value !== 'object' || seen.has(value)) return out;
  seen.add(value);
  if (ArrayBuffer.isView(value)) {
    const buf = value.buffer;
    if (
      buf instanceof ArrayBuffer &&
      value.byteOffset === 0 &&
      value.byteLength === buf.byteLength &&
      !seen.has(buf)
    ) {
      seen.add(buf);
      out.push(buf);
    }
    return out;
  }
  if (value instanceof ArrayBuffer) {
    out.push(value);
    return out;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectTransferables(v, out, seen);
    return out;
  }
  for (const v of Object.values(value as Record<string, unknown>)) collectTransferables(v, out, seen);
  return out;
}
