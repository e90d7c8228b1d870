/**
 * Decoding and encoding of images at the service's edge. Runs on the main thread (sharp has its own thread pool);
 * what it produces, a FloatImage, is a plain object over one Float32Array, so a worker task can take it by
 * transferring `data.buffer` instead of copying.
 *
 * Accepted inputs: PNG (8/16-bit, palette, grey, alpha), JPEG (including CMYK, converted to sRGB), WebP, TIFF (first
 * page; 8/16-bit) and GIF (first frame only). Everything else is refused: SVG is refused before sharp sees it (an
 * SVG is a program for a renderer, not pixels), and so are other formats sharp could read (HEIF/AVIF, ...).
 */
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { fail } from '../errors.js';

/** Interleaved HWC pixels in [0,1]. */
export interface FloatImage {
  data: Float32Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

export type InputFormat = 'png' | 'jpeg' | 'webp' | 'tiff' | 'gif';
export type OutputFormat = 'png' | 'png16' | 'jpeg' | 'webp' | 'tiff';

export interface DecodeOptions {
  /** Refuse (413) images with more pixels than this, judged from the header before any pixel is decoded. */
  maxPixels: number;
  /**
   * 'keep' (default): grey stays 1 channel, colour becomes 3 (4 with keepAlpha). 'grey': 1 channel (Rec. 601 luma
   * of the sRGB values, as MATLAB's rgb2gray and PIL's convert('L') compute it). 'rgb': 3 channels (4 with keepAlpha).
   */
  mode?: 'grey' | 'rgb' | 'keep';
  /** Keep the alpha channel (RGBA, 4 channels; a grey+alpha image becomes RGBA). Otherwise alpha is dropped. */
  keepAlpha?: boolean;
}

export interface DecodedImage {
  image: FloatImage;
  format: InputFormat;
  /** Bits per sample the pixels were decoded at: 16 for 16-bit PNG/TIFF, else 8. */
  bitDepth: 8 | 16;
  /** Channels in the file before conversion (e.g. 2 for grey+alpha, 4 for RGBA or CMYK). */
  originalChannels: number;
}

const ACCEPTED = new Set<string>(['png', 'jpeg', 'webp', 'tiff', 'gif']);

/** Signatures of the formats we accept. */
function sniffAccepted(b: Buffer): InputFormat | undefined {
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  // Classic TIFF (42) and BigTIFF (43), either byte order.
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  if (startsWith(b, [0x49, 0x49, 0x2b, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2b])) return 'tiff';
  const gif = ascii(b, 0, 6);
  if (gif === 'GIF87a' || gif === 'GIF89a') return 'gif';
  return undefined;
}

/**
 * Formats we recognise and refuse without handing the bytes to sharp. XML/SVG and gzip (svgz) matter most: sharp
 * would render them with librsvg; the others are named so that the client learns what it sent.
 */
function sniffRefused(b: Buffer): string | undefined {
  let start = 0;
  if (startsWith(b, [0xef, 0xbb, 0xbf])) start = 3;
  while (start < b.length && start < 1024 && (b[start] === 0x20 || (b[start] >= 0x09 && b[start] <= 0x0d)))
    start++;
  // librsvg looks for '<svg' in the first bytes, so anything containing it is treated as SVG.
  if (b.subarray(0, 4096).includes('<svg')) return 'svg';
  if (b[start] === 0x3c /* '<' */) return 'xml/html';
  if (startsWith(b, [0x1f, 0x8b])) return 'gzip (svgz?)';
  if (ascii(b, 0, 4) === '%PDF') return 'pdf';
  if (ascii(b, 4, 8) === 'ftyp') return 'heif/avif';
  if (
    startsWith(b, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20]) ||
    startsWith(b, [0xff, 0x4f, 0xff, 0x51])
  ) {
    return 'jpeg2000';
  }
  if (startsWith(b, [0xff, 0x0a]) || startsWith(b, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20]))
    return 'jxl';
  if (ascii(b, 0, 2) === 'BM' && b.length >= 26) return 'bmp';
  return undefined;
}

function startsWith(b: Buffer, sig: number[]): boolean {
  if (b.length < sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[i] !== sig[i]) return false;
  return true;
}

function ascii(b: Buffer, from: number, to: number): string {
  return b.length >= to ? b.toString('latin1', from, to) : '';
}

function sharpReason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isPixelLimitError(err: unknown): boolean {
  return /pixel limit/i.test(sharpReason(err));
}

/** Reads the header only: format, size, colour space, bit depth. */
async function readHeader(bytes: Buffer): Promise<Metadata> {
  try {
    // Our own maxPixels check follows with the real numbers; sharp's limit here would hide them.
    return await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw fail('IMAGE_INVALID', 'The image could not be decoded', { details: { reason: sharpReason(err) } });
  }
}

/** 413 TW_IMAGE_TOO_LARGE when width x height exceeds maxPixels. */
function checkPixelLimit(width: number, height: number, maxPixels: number): void {
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw fail(
      'IMAGE_TOO_LARGE',
      `The image has ${pixels} pixels (${width}x${height}); the limit is ${maxPixels}`,
      {
        details: { width, height, pixels, maxPixels },
      },
    );
  }
}

/**
 * What can be judged from the signature and the header alone, without decoding a pixel: empty (400), a format we
 * refuse (415; SVG and friends never reach sharp), an unreadable header (400), no pixels (400), more than
 * maxPixels (413). decodeImage starts with it; routes that may queue the bytes as a job call it first, so that a
 * decompression bomb or an SVG is refused at once rather than accepted (202) and failed later.
 */
export async function screenImage(
  bytes: Buffer,
  maxPixels: number,
): Promise<{ format: InputFormat; width: number; height: number; header: Metadata }> {
  if (!Number.isInteger(maxPixels) || maxPixels < 1) {
    throw new RangeError('decodeImage: maxPixels must be >= 1');
  }
  if (bytes.length === 0) throw fail('IMAGE_INVALID', 'The image is empty (0 bytes)');

  const sniffed = sniffAccepted(bytes);
  if (!sniffed) {
    const refused = sniffRefused(bytes);
    if (refused) throw unsupported(refused);
    // Unknown signature: let sharp say whether it is an image at all (415) or not (400, with its reason).
    const header = await readHeader(bytes);
    throw unsupported(header.format ?? 'unknown');
  }

  const header = await readHeader(bytes);
  const format = header.format as string;
  if (!ACCEPTED.has(format)) throw unsupported(format);
  const width = header.width ?? 0;
  const height = header.height ?? 0;
  if (width <= 0 || height <= 0) throw fail('IMAGE_INVALID', 'The image has no pixels');
  checkPixelLimit(width, height, maxPixels);
  return { format: format as InputFormat, width, height, header };
}

export async function decodeImage(bytes: Buffer, opts: DecodeOptions): Promise<DecodedImage> {
  const { maxPixels } = opts;
  const mode = opts.mode ?? 'keep';
  const { format, width, height, header } = await screenImage(bytes, maxPixels);

  const greySource = header.space === 'b-w' || header.space === 'grey16';
  const hasAlpha = header.hasAlpha === true;
  const keepAlpha = opts.keepAlpha === true && hasAlpha && mode !== 'grey';
  // FloatImage has no grey+alpha layout: such an image decodes as RGBA when its alpha is kept.
  const decodeAsGrey = greySource && mode !== 'rgb' && !keepAlpha;
  const sixteenBit = header.depth === 'ushort' || header.depth === 'short';
  const expectedChannels = decodeAsGrey ? 1 : keepAlpha ? 4 : 3;

  let raw: { data: Buffer; info: OutputInfo };
  try {
    let pipeline = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated', pages: 1 }).autoOrient();
    if (!keepAlpha) pipeline = pipeline.removeAlpha();
    if (sixteenBit) {
      pipeline = pipeline.toColourspace(decodeAsGrey ? 'grey16' : 'rgb16').raw({ depth: 'ushort' });
    } else {
      pipeline = pipeline.toColourspace(decodeAsGrey ? 'b-w' : 'srgb').raw();
    }
    raw = await pipeline.toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (isPixelLimitError(err)) {
      throw fail('IMAGE_TOO_LARGE', `The image has more than ${maxPixels} pixels`, {
        details: { width, height, maxPixels },
      });
    }
    throw fail('IMAGE_INVALID', 'The image could not be decoded', { details: { reason: sharpReason(err) } });
  }

  const { info } = raw;
  if (info.channels !== expectedChannels) {
    throw fail('IMAGE_INVALID', `Unexpected channel layout after decoding (${info.channels} channels)`, {
      details: { space: header.space, channels: header.channels },
    });
  }
  const data = new Float32Array(info.width * info.height * info.channels);
  if (sixteenBit) {
    // Copy first: the Buffer may sit at an odd offset in sharp's pool, and Uint16Array needs alignment.
    const samples = new Uint16Array(
      raw.data.buffer.slice(raw.data.byteOffset, raw.data.byteOffset + data.length * 2),
    );
    for (let i = 0; i < data.length; i++) data[i] = samples[i] / 65535;
  } else {
    for (let i = 0; i < data.length; i++) data[i] = raw.data[i] / 255;
  }
  let image: FloatImage = { data, width: info.width, height: info.height, channels: expectedChannels };
  if (mode === 'grey' && image.channels !== 1) image = toGrey(image);
  return {
    image,
    format: format as InputFormat,
    bitDepth: sixteenBit ? 16 : 8,
    originalChannels: header.channels ?? image.channels,
  };
}

function unsupported(format: string) {
  return fail(
    'IMAGE_FORMAT_UNSUPPORTED',
    `Images in ${format} format are not accepted; send PNG, JPEG, WebP, TIFF or GIF`,
    { details: { format } },
  );
}

export interface EncodeOptions {
  /** JPEG/WebP quality 1..100 (default 92 for JPEG, 90 for WebP). */
  quality?: number;
  /** WebP only: lossless (default false). */
  lossless?: boolean;
  /** PNG/TIFF: 16-bit samples (default 8; 'png16' implies 16). */
  bitDepth?: 8 | 16;
}

/**
 * Encodes a FloatImage. Values are clipped to [0,1] and rounded to the nearest code. JPEG has no alpha, so a
 * 4-channel image loses it there. TIFF is written losslessly (deflate), PNG at compression level 6.
 */
export async function encodeImage(
  img: FloatImage,
  format: OutputFormat,
  opts: EncodeOptions = {},
): Promise<Buffer> {
  assertImage(img);
  const sixteenBit = format === 'png16' || (opts.bitDepth === 16 && (format === 'png' || format === 'tiff'));
  const { width, height, channels } = img;
  const n = img.data.length;
  let pipeline: Sharp;
  if (sixteenBit) {
    const samples = new Uint16Array(n);
    for (let i = 0; i < n; i++) samples[i] = Math.round(clampUnit(img.data[i]) * 65535);
    pipeline = sharp(samples, { raw: { width, height, channels } }).toColourspace(
      channels === 1 ? 'grey16' : 'rgb16',
    );
  } else {
    const samples = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) samples[i] = Math.round(clampUnit(img.data[i]) * 255);
    pipeline = sharp(samples, { raw: { width, height, channels } }).toColourspace(
      channels === 1 ? 'b-w' : 'srgb',
    );
  }
  switch (format) {
    case 'png':
    case 'png16':
      return pipeline.png({ compressionLevel: 6 }).toBuffer();
    case 'jpeg':
      return pipeline
        .removeAlpha()
        .jpeg({ quality: opts.quality ?? 92, chromaSubsampling: '4:4:4' })
        .toBuffer();
    case 'webp':
      return pipeline.webp({ quality: opts.quality ?? 90, lossless: opts.lossless ?? false }).toBuffer();
    case 'tiff':
      // sharp's default TIFF compression is JPEG (lossy, 8-bit): deflate keeps every value.
      return pipeline.tiff({ compression: 'deflate' }).toBuffer();
    default:
      throw fail('NOT_ACCEPTABLE', `Cannot encode images as ${String(format)}`);
  }
}

function assertImage(img: FloatImage): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`FloatImage: bad size ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4)
    throw new RangeError(`FloatImage: bad channels ${channels}`);
  if (data.length !== width * height * channels) {
    throw new RangeError(`FloatImage: ${data.length} values for ${width}x${height}x${channels}`);
  }
}

const FORMAT_CONTENT_TYPES: Record<OutputFormat, string> = {
  png: 'image/png',
  png16: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  tiff: 'image/tiff',
};

/** Aliases a client may put in `?format=`. */
const FORMAT_ALIASES: Record<string, OutputFormat> = {
  png: 'png',
  png16: 'png16',
  jpeg: 'jpeg',
  jpg: 'jpeg',
  webp: 'webp',
  tiff: 'tiff',
  tif: 'tiff',
};

/** Our preference when the client likes several equally: PNG is lossless and universal. */
const SERVER_PREFERENCE: OutputFormat[] = ['png', 'webp', 'jpeg', 'tiff'];

const MEDIA_TYPE_FORMATS: Record<string, OutputFormat> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/webp': 'webp',
  'image/tiff': 'tiff',
};

export const OUTPUT_FORMATS = Object.keys(FORMAT_ALIASES);

/**
 * Picks the output format: an explicit `format` (query parameter) wins; otherwise the Accept header with q-values
 * (RFC 9110: the most specific matching range decides a type's q; q=0 excludes); absent, empty or `*\/*` gives PNG.
 * 16-bit PNG is only chosen by `format=png16`. Nothing acceptable -> 406.
 */
export function negotiateFormat(
  accept?: string,
  format?: string,
): { format: OutputFormat; contentType: string } {
  if (format !== undefined && format !== '') {
    const chosen = FORMAT_ALIASES[format.trim().toLowerCase()];
    if (!chosen) {
      throw fail(
        'NOT_ACCEPTABLE',
        `Unknown output format '${format}'; use one of ${OUTPUT_FORMATS.join(', ')}`,
        {
          details: { supported: OUTPUT_FORMATS },
        },
      );
    }
    return { format: chosen, contentType: FORMAT_CONTENT_TYPES[chosen] };
  }
  if (accept === undefined || accept.trim() === '') return { format: 'png', contentType: 'image/png' };

  const ranges = parseAccept(accept);
  let best: OutputFormat | undefined;
  let bestQ = 0;
  for (const candidate of SERVER_PREFERENCE) {
    const q = qualityFor(FORMAT_CONTENT_TYPES[candidate], candidate, ranges);
    if (q > bestQ) {
      best = candidate;
      bestQ = q;
    }
  }
  if (!best) {
    throw fail('NOT_ACCEPTABLE', `None of the accepted types (${accept}) can be produced`, {
      details: { supported: Object.keys(MEDIA_TYPE_FORMATS) },
    });
  }
  return { format: best, contentType: FORMAT_CONTENT_TYPES[best] };
}

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of accept.split(',')) {
    const [mediaType, ...params] = part.split(';').map((s) => s.trim());
    const slash = mediaType.indexOf('/');
    if (slash <= 0) continue;
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=').map((s) => s.trim());
      if (key.toLowerCase() === 'q') {
        const parsed = Number(value);
        q = Number.isFinite(parsed) ? Math.min(1, Math.max(0, parsed)) : 0;
      }
    }
    ranges.push({
      type: mediaType.slice(0, slash).toLowerCase(),
      subtype: mediaType.slice(slash + 1).toLowerCase(),
      q,
    });
  }
  return ranges;
}

/** q of a format: that of the most specific range matching it (exact > type/* > *\/*), 0 when none does. */
function qualityFor(contentType: string, format: OutputFormat, ranges: MediaRange[]): number {
  const [type, subtype] = contentType.split('/');
  let specificity = -1;
  let q = 0;
  for (const r of ranges) {
    let s = -1;
    if (r.type === type && (r.subtype === subtype || MEDIA_TYPE_FORMATS[`${r.type}/${r.subtype}`] === format))
      s = 2;
    else if (r.type === type && r.subtype === '*') s = 1;
    else if (r.type === '*' && r.subtype === '*') s = 0;
    if (s > specificity || (s === specificity && s >= 0 && r.q > q)) {
      specificity = s;
      q = r.q;
    }
  }
  return specificity < 0 ? 0 : q;
}

function clampUnit(v: number): number {
  // NaN becomes 0 rather than propagating into an encoder.
  return v > 0 ? Math.min(v, 1) : 0;
}

/** A copy of the values clipped to [0,1] (NaN -> 0). */
export function clip01(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = clampUnit(values[i]);
  return out;
}

/** One channel: Rec. 601 luma Y = 0.299 R + 0.587 G + 0.114 B of the stored (gamma-encoded) values; alpha ignored. */
export function toGrey(img: FloatImage): FloatImage {
  assertImage(img);
  if (img.channels === 1) return { ...img, data: img.data.slice() };
  const n = img.width * img.height;
  const c = img.channels;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    data[i] = 0.299 * img.data[i * c] + 0.587 * img.data[i * c + 1] + 0.114 * img.data[i * c + 2];
  }
  return { data, width: img.width, height: img.height, channels: 1 };
}

/** Planar copy: one Float32Array (height*width) per channel, the CHW layout networks consume. */
export function toChannels(img: FloatImage): Float32Array[] {
  assertImage(img);
  const n = img.width * img.height;
  const c = img.channels;
  const planes = Array.from({ length: c }, () => new Float32Array(n));
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) planes[k][i] = img.data[i * c + k];
  return planes;
}

/** Interleaves planes (1, 3 or 4 of them, each height*width) back into a FloatImage. */
export function fromChannels(planes: ArrayLike<number>[], width: number, height: number): FloatImage {
  const c = planes.length;
  if (c !== 1 && c !== 3 && c !== 4) throw new RangeError(`fromChannels: ${c} planes; expected 1, 3 or 4`);
  const n = width * height;
  for (const p of planes)
    if (p.length !== n) throw new RangeError(`fromChannels: a plane has ${p.length} values`);
  const data = new Float32Array(n * c);
  for (let k = 0; k < c; k++) {
    const plane = planes[k];
    for (let i = 0; i < n; i++) data[i * c + k] = plane[i];
  }
  return { data, width, height, channels: c };
}
