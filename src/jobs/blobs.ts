/**
 * Bytes inside job inputs and results (images) are kept as bytes: before a value goes to Redis as JSON, every
 * Uint8Array/Buffer in it is replaced by a `{ $blob: i }` marker and stored separately as raw bytes; joining puts
 * them back. (Base64 in JSON would cost a third more memory and a copy each way.)
 */

export interface BlobMarker {
  $blob: number;
}

const isMarker = (v: unknown): v is BlobMarker =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as BlobMarker).$blob === 'number' &&
  Object.keys(v).length === 1;

export function splitBlobs(value: unknown): { json: unknown; blobs: Buffer[] } {
  const blobs: Buffer[] = [];
  const walk = (v: unknown): unknown => {
    if (v instanceof Uint8Array) {
      blobs.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      return { $blob: blobs.length - 1 } satisfies BlobMarker;
    }
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return { json: walk(value), blobs };
}

export function joinBlobs(json: unknown, blobs: Buffer[]): unknown {
  const walk = (v: unknown): unknown => {
    if (isMarker(v)) {
      const blob = blobs[v.$blob];
      if (!blob) throw new Error(`blob ${v.$blob} is missing`);
      return blob;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(json);
}
