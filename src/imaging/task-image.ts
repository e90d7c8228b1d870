/**
 * Images as compute tasks take them: either pixels already decoded (a FloatImage-like object), or the encoded
 * file bytes with the pixel limit, decoded here in the worker with sharp (src/imaging/codec.ts), so that the main
 * thread never holds or converts a decoded image. The main thread screens the header first (format, size,
 * memory budget); decodeImage screens it again, so a task never trusts its caller.
 */
import { decodeImage, encodeImage, type OutputFormat } from './codec.js';

export interface PixelImage {
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
}

export interface EncodedImage {
  /** The image file (PNG, JPEG, WebP, TIFF, GIF). */
  encoded: Uint8Array;
  /** Refuse (413) more pixels than this, from the header. */
  maxPixels: number;
}

export type TaskImage = PixelImage | EncodedImage;

function isEncoded(image: TaskImage): image is EncodedImage {
  return (image as EncodedImage).encoded !== undefined;
}

/** The pixels of a task's image, decoding it here when it came encoded. */
export async function taskPixels(image: TaskImage, mode: 'keep' | 'grey'): Promise<PixelImage> {
  if (!isEncoded(image)) return image;
  const { encoded, maxPixels } = image;
  const decoded = await decodeImage(Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength), {
    maxPixels,
    mode,
  });
  return decoded.image;
}

/** Encode a task's output image here (the main thread only sends the bytes). */
export async function encodeTaskImage(image: PixelImage, format: OutputFormat): Promise<Uint8Array> {
  const bytes = await encodeImage(
    { data: image.data, width: image.width, height: image.height, channels: image.channels as 1 | 3 | 4 },
    format,
  );
  // A fresh copy owns its ArrayBuffer, so it is moved to the main thread rather than cloned.
  return new Uint8Array(bytes);
}

/**
 * The timings of an image pipeline whose main thread only screens (t0 -> screened) and whose worker decodes, runs
 * and encodes (screened -> computed): the stages, the total, and the worker's own timings under `prefix.`.
 */
export function imagePipelineTimings(
  t0: number,
  screened: number,
  computed: number,
  worker: Record<string, number>,
  prefix: string,
): Record<string, number> {
  return {
    screenMs: screened - t0,
    decodeMs: worker.decodeMs ?? 0,
    computeMs: computed - screened,
    encodeMs: worker.encodeMs ?? 0,
    totalMs: performance.now() - t0,
    ...Object.fromEntries(Object.entries(worker).map(([k, v]) => [`${prefix}.${k}`, v])),
  };
}
