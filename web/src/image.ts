/**
 * Images in the browser as the service sees them: planar-free interleaved Float32 intensities on [0, 1], 1 (grey)
 * or 3 (RGB) channels. Decoding goes through createImageBitmap without colour-space conversion, so pixel values
 * are the file's; encoding is our own small PNG writer (8-bit grey or RGB, zlib by CompressionStream), so a grey
 * image reaches the service as one channel and not as RGBA.
 */

export interface Raster {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Float32Array;
}

function canvas2d(
  width: number,
  height: number,
): { canvas: HTMLCanvasElement; ctx: CanvasRenderingContext2D } {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('no 2D canvas');
  return { canvas, ctx };
}

/**
 * Decodes an image file; when `maxSide` is given and the image is larger, it is scaled down (aspect kept) with
 * the browser's smoothing. Colour images whose channels are all equal come back grey.
 */
export async function decodeImage(blob: Blob, maxSide?: number): Promise<Raster> {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  let { width, height } = bitmap;
  const scale = maxSide && Math.max(width, height) > maxSide ? maxSide / Math.max(width, height) : 1;
  width = Math.max(1, Math.round(width * scale));
  height = Math.max(1, Math.round(height * scale));
  const { ctx } = canvas2d(width, height);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  let grey = true;
  for (let i = 0; i < rgba.length && grey; i += 4) grey = rgba[i] === rgba[i + 1] && rgba[i] === rgba[i + 2];
  const channels = grey ? 1 : 3;
  const data = new Float32Array(width * height * channels);
  for (let p = 0; p < width * height; p++)
    for (let c = 0; c < channels; c++) data[p * channels + c] = rgba[p * 4 + c] / 255;
  return { width, height, channels, data };
}

/** Rec. 601 luma, the conversion the service applies to colour input of grey models. */
export function toGrey(r: Raster): Raster {
  if (r.channels === 1) return r;
  const data = new Float32Array(r.width * r.height);
  for (let p = 0; p < data.length; p++)
    data[p] = 0.299 * r.data[p * 3] + 0.587 * r.data[p * 3 + 1] + 0.114 * r.data[p * 3 + 2];
  return { width: r.width, height: r.height, channels: 1, data };
}

/** Values rounded to 8 bits, as they will be once written to PNG (PSNR compares what was really sent). */
export function quantize(r: Raster): Raster {
  const data = new Float32Array(r.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(Math.min(1, Math.max(0, r.data[i])) * 255) / 255;
  return { ...r, data };
}

/** Draws a raster on a canvas (resizing the canvas to the raster). */
export function drawRaster(r: Raster, canvas: HTMLCanvasElement): void {
  canvas.width = r.width;
  canvas.height = r.height;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const img = ctx.createImageData(r.width, r.height);
  for (let p = 0; p < r.width * r.height; p++) {
    for (let c = 0; c < 3; c++) {
      const v = r.data[p * r.channels + (r.channels === 1 ? 0 : c)];
      img.data[p * 4 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// --- PNG writer -------------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function zlib(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** An 8-bit PNG (grey or RGB) of the raster, values clipped to [0, 1]. */
export async function encodePng(r: Raster): Promise<Blob> {
  const rowBytes = r.width * r.channels;
  const raw = new Uint8Array((rowBytes + 1) * r.height);
  for (let y = 0; y < r.height; y++) {
    raw[y * (rowBytes + 1)] = 0; // filter: none
    for (let i = 0; i < rowBytes; i++) {
      const v = r.data[y * rowBytes + i];
      raw[y * (rowBytes + 1) + 1 + i] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, r.width);
  hv.setUint32(4, r.height);
  header[8] = 8; // bit depth
  header[9] = r.channels === 1 ? 0 : 2; // colour type: grey or RGB
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const parts = [
    signature,
    chunk('IHDR', header),
    chunk('IDAT', await zlib(raw)),
    chunk('IEND', new Uint8Array()),
  ];
  return new Blob(parts as BlobPart[], { type: 'image/png' });
}

export function base64ToBlob(b64: string, type: string): Blob {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

/** An <img> showing a blob, scaled up without smoothing (small images stay readable). */
export function blobImage(blob: Blob, alt: string, cls = 'pixelated'): HTMLImageElement {
  const img = document.createElement('img');
  showBlob(img, blob);
  img.alt = alt;
  img.className = cls;
  return img;
}

/**
 * Points an <img> at a blob and frees the object URL once the image has loaded (or failed): the decoded picture
 * stays on screen, and a page that runs many times does not keep every result's bytes alive in the tab.
 */
export function showBlob(img: HTMLImageElement, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const release = () => URL.revokeObjectURL(url);
  img.addEventListener('load', release, { once: true });
  img.addEventListener('error', release, { once: true });
  img.src = url;
}

const downloads = new Map<string, string>();

/** An object URL for a download link; the previous URL under the same key (the last run's result) is freed. */
export function downloadUrl(key: string, blob: Blob): string {
  const previous = downloads.get(key);
  if (previous) URL.revokeObjectURL(previous);
  const url = URL.createObjectURL(blob);
  downloads.set(key, url);
  return url;
}
