import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { TweedieError } from '../../src/errors.js';
import {
  clip01,
  decodeImage,
  encodeImage,
  type FloatImage,
  fromChannels,
  toChannels,
  toGrey,
} from '../../src/imaging/codec.js';
import { psnr } from '../../src/imaging/metrics.js';
import { Rng } from '../../src/util/random.js';

const LIMIT = { maxPixels: 1_000_000 };

/** Random values in [0,1] on a smooth-plus-noise pattern (so lossy codecs behave like on photos). */
function makeImage(width: number, height: number, channels: 1 | 3 | 4, seed = 1, noise = 1): FloatImage {
  const rng = new Rng(seed);
  const data = new Float32Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        const smooth = 0.5 + 0.35 * Math.sin((x + 3 * c) / 5) * Math.cos(y / 7);
        data[(y * width + x) * channels + c] = Math.min(
          1,
          Math.max(0, smooth + noise * 0.1 * (rng.uniform() - 0.5)),
        );
      }
    }
  }
  return { data, width, height, channels };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function expectCode(promise: Promise<unknown>, code: string, status: number): Promise<TweedieError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TweedieError);
  expect((err as TweedieError).code).toBe(code);
  expect((err as TweedieError).statusCode).toBe(status);
  return err as TweedieError;
}

function crc32(buf: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid PNG header declaring width x height grey pixels, with a tiny IDAT: what a decompression bomb looks like. */
function craftedPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('lossless round trips', () => {
  it('PNG 8-bit keeps every code value, grey and RGB and RGBA', async () => {
    for (const channels of [1, 3, 4] as const) {
      const img = makeImage(9, 7, channels, channels);
      const quantised = { ...img, data: img.data.map((v) => Math.round(v * 255) / 255) };
      const png = await encodeImage(img, 'png');
      const meta = await sharp(png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.depth).toBe('uchar');
      const decoded = await decodeImage(png, { ...LIMIT, keepAlpha: true });
      expect(decoded.format).toBe('png');
      expect(decoded.bitDepth).toBe(8);
      expect(decoded.originalChannels).toBe(channels);
      expect(decoded.image.channels).toBe(channels);
      expect([decoded.image.width, decoded.image.height]).toEqual([9, 7]);
      expect(maxAbsDiff(decoded.image.data, quantised.data)).toBeLessThan(1e-7);
      expect(maxAbsDiff(decoded.image.data, img.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-7);
    }
  });

  it('PNG 16-bit preserves values to 1/65535', async () => {
    for (const channels of [1, 3] as const) {
      const img = makeImage(11, 6, channels, 10 + channels);
      const png = await encodeImage(img, 'png16');
      expect((await sharp(png).metadata()).bitsPerSample).toBe(16);
      const decoded = await decodeImage(png, LIMIT);
      expect(decoded.bitDepth).toBe(16);
      expect(decoded.image.channels).toBe(channels);
      const err = maxAbsDiff(decoded.image.data, img.data);
      expect(err).toBeLessThanOrEqual(0.5 / 65535 + 1e-7);
      // 8-bit would be off by up to 0.5/255: make sure the 16 bits are really used.
      expect(err).toBeLessThan(0.1 / 255);
    }
  });

  it('TIFF 8-bit and 16-bit round trip without loss', async () => {
    const img = makeImage(8, 5, 3, 21);
    const t8 = await encodeImage(img, 'tiff');
    const d8 = await decodeImage(t8, LIMIT);
    expect(d8.format).toBe('tiff');
    expect(d8.bitDepth).toBe(8);
    expect(maxAbsDiff(d8.image.data, img.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-7);
    const t16 = await encodeImage(img, 'tiff', { bitDepth: 16 });
    const d16 = await decodeImage(t16, LIMIT);
    expect(d16.bitDepth).toBe(16);
    expect(maxAbsDiff(d16.image.data, img.data)).toBeLessThanOrEqual(0.5 / 65535 + 1e-7);
  });

  it('WebP lossless round trips; lossy WebP stays close', async () => {
    const img = makeImage(16, 12, 3, 31);
    const lossless = await decodeImage(await encodeImage(img, 'webp', { lossless: true }), LIMIT);
    expect(lossless.format).toBe('webp');
    expect(maxAbsDiff(lossless.image.data, img.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-7);
    const lossy = await decodeImage(await encodeImage(img, 'webp', { quality: 90 }), LIMIT);
    expect(psnr(lossy.image.data, img.data)).toBeGreaterThan(28);
  });

  it('clips out-of-range values and NaN when encoding', async () => {
    const img: FloatImage = {
      data: Float32Array.from([-0.5, 1.5, Number.NaN, 0.25]),
      width: 2,
      height: 2,
      channels: 1,
    };
    const { image } = await decodeImage(await encodeImage(img, 'png'), LIMIT);
    expect(Array.from(image.data)).toEqual([0, 1, 0, 64 / 255].map(Math.fround));
    expect(Array.from(clip01([-1, 0.5, 2, Number.NaN]))).toEqual([0, 0.5, 1, 0]);
  });
});

describe('JPEG, GIF and colour handling', () => {
  it('decodes JPEG close to the original', async () => {
    const img = makeImage(32, 24, 3, 41, 0.2);
    const jpeg = await encodeImage(img, 'jpeg', { quality: 95 });
    expect(jpeg.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
    const decoded = await decodeImage(jpeg, LIMIT);
    expect(decoded.format).toBe('jpeg');
    expect(decoded.image.channels).toBe(3);
    expect(psnr(decoded.image.data, img.data)).toBeGreaterThan(35);
  });

  it('honours EXIF orientation 6 (rotate 90 degrees clockwise)', async () => {
    // Stored 16 wide x 8 high, left half white: displayed 8 wide x 16 high, top half white.
    const w = 16;
    const h = 8;
    const stored = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w / 2; x++) stored.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const jpeg = await sharp(stored, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const { image } = await decodeImage(jpeg, LIMIT);
    expect([image.width, image.height]).toEqual([h, w]);
    const at = (x: number, y: number) => image.data[(y * image.width + x) * 3];
    expect(at(4, 2)).toBeGreaterThan(0.9);
    expect(at(4, 13)).toBeLessThan(0.1);
  });

  it('converts CMYK JPEG to sRGB', async () => {
    const rgb = makeImage(16, 16, 3, 51, 0);
    const cmyk = await sharp(Buffer.from(rgb.data.map((v) => Math.round(v * 255))), {
      raw: { width: 16, height: 16, channels: 3 },
    })
      .toColourspace('cmyk')
      .jpeg({ quality: 100 })
      .toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const decoded = await decodeImage(cmyk, LIMIT);
    expect(decoded.originalChannels).toBe(4);
    expect(decoded.image.channels).toBe(3);
    expect(psnr(decoded.image.data, rgb.data)).toBeGreaterThan(20);
  });

  it('grey stays grey in keep mode, becomes 3 equal channels in rgb mode', async () => {
    const grey = makeImage(6, 5, 1, 61);
    const png = await encodeImage(grey, 'png');
    const kept = await decodeImage(png, LIMIT);
    expect(kept.image.channels).toBe(1);
    const rgb = await decodeImage(png, { ...LIMIT, mode: 'rgb' });
    expect(rgb.image.channels).toBe(3);
    const planes = toChannels(rgb.image);
    expect(planes[0]).toEqual(kept.image.data);
    expect(planes[1]).toEqual(kept.image.data);
    expect(planes[2]).toEqual(kept.image.data);
  });

  it('colour to grey uses Rec. 601 luma of the stored values', async () => {
    const img = makeImage(6, 5, 3, 71);
    const png = await encodeImage(img, 'png');
    const colour = await decodeImage(png, LIMIT);
    const grey = await decodeImage(png, { ...LIMIT, mode: 'grey' });
    expect(grey.image.channels).toBe(1);
    const [r, g, b] = toChannels(colour.image);
    const expected = r.map((_, i) => 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]);
    expect(maxAbsDiff(grey.image.data, expected)).toBeLessThan(1e-6);
  });

  it('drops alpha without compositing unless keepAlpha', async () => {
    const rgba = makeImage(5, 4, 4, 81);
    const png = await encodeImage(rgba, 'png');
    const planes = toChannels(rgba);
    const dropped = await decodeImage(png, LIMIT);
    expect(dropped.image.channels).toBe(3);
    expect(dropped.originalChannels).toBe(4);
    const droppedPlanes = toChannels(dropped.image);
    for (let c = 0; c < 3; c++)
      expect(maxAbsDiff(droppedPlanes[c], planes[c])).toBeLessThanOrEqual(0.5 / 255 + 1e-7);
    const kept = await decodeImage(png, { ...LIMIT, keepAlpha: true });
    expect(kept.image.channels).toBe(4);
    expect(maxAbsDiff(toChannels(kept.image)[3], planes[3])).toBeLessThanOrEqual(0.5 / 255 + 1e-7);
  });

  it('grey+alpha: 1 channel by default, RGBA with keepAlpha', async () => {
    const pixels = Buffer.from([0, 255, 100, 128, 200, 0, 50, 10]);
    const png = await sharp(pixels, { raw: { width: 2, height: 2, channels: 2 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    const meta = await sharp(png).metadata();
    expect([meta.channels, meta.hasAlpha]).toEqual([2, true]);
    const grey = await decodeImage(png, LIMIT);
    expect(grey.image.channels).toBe(1);
    expect(Array.from(grey.image.data)).toEqual([0, 100, 200, 50].map((v) => Math.fround(v / 255)));
    const rgba = await decodeImage(png, { ...LIMIT, keepAlpha: true });
    expect(rgba.image.channels).toBe(4);
    expect(Array.from(rgba.image.data.subarray(4, 8))).toEqual(
      [100, 100, 100, 128].map((v) => Math.fround(v / 255)),
    );
  });

  it('expands palette PNGs to their colours', async () => {
    const colours = [
      [255, 0, 0],
      [0, 0, 255],
      [20, 200, 40],
      [250, 250, 250],
    ];
    const raw = Buffer.alloc(8 * 8 * 3);
    for (let i = 0; i < 64; i++) raw.set(colours[(i + (i >> 3)) % 4], i * 3);
    const png = await sharp(raw, { raw: { width: 8, height: 8, channels: 3 } })
      .png({ palette: true, dither: 0 })
      .toBuffer();
    expect((await sharp(png).metadata()).isPalette).toBe(true);
    const { image } = await decodeImage(png, LIMIT);
    expect(image.channels).toBe(3);
    expect(
      maxAbsDiff(
        image.data,
        Float32Array.from(raw, (v) => v / 255),
      ),
    ).toBeLessThan(1e-6);
  });

  it('takes the first frame of an animated GIF', async () => {
    const w = 4;
    const frame = 3;
    const raw = Buffer.alloc(w * frame * 2 * 4, 255); // two frames, opaque white...
    raw.fill(0, 0, w * frame * 4); // ...the first one black
    for (let i = 3; i < raw.length; i += 4) raw[i] = 255;
    const gif = await sharp(raw, { raw: { width: w, height: frame * 2, channels: 4, pageHeight: frame } })
      .gif()
      .toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const decoded = await decodeImage(gif, LIMIT);
    expect(decoded.format).toBe('gif');
    expect([decoded.image.width, decoded.image.height]).toEqual([w, frame]);
    expect(Math.max(...decoded.image.data)).toBe(0);
  });
});

describe('refusals', () => {
  it('refuses a truncated PNG with IMAGE_INVALID and sharp reason', async () => {
    const png = await encodeImage(makeImage(64, 64, 3, 91, 5), 'png');
    const err = await expectCode(
      decodeImage(png.subarray(0, Math.floor(png.length * 0.6)), LIMIT),
      'TW_IMAGE_INVALID',
      400,
    );
    expect((err.details as { reason: string }).reason.length).toBeGreaterThan(0);
    await expectCode(decodeImage(png.subarray(0, 30), LIMIT), 'TW_IMAGE_INVALID', 400);
  });

  it('refuses random bytes, and random bytes behind a PNG signature', async () => {
    const rng = new Rng(7);
    const bytes = Buffer.from(Array.from({ length: 2000 }, () => rng.int(256)));
    bytes[0] = 0x42; // not a signature we know
    const err = await expectCode(decodeImage(bytes, LIMIT), 'TW_IMAGE_INVALID', 400);
    expect((err.details as { reason: string }).reason).toMatch(/unsupported image format/i);
    bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    await expectCode(decodeImage(bytes, LIMIT), 'TW_IMAGE_INVALID', 400);
    await expectCode(decodeImage(Buffer.alloc(0), LIMIT), 'TW_IMAGE_INVALID', 400);
  });

  it('refuses a PNG declaring 100000x100000 pixels quickly, without decoding', async () => {
    const started = performance.now();
    const err = await expectCode(decodeImage(craftedPng(100_000, 100_000), LIMIT), 'TW_IMAGE_TOO_LARGE', 413);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.details).toMatchObject({
      width: 100_000,
      height: 100_000,
      pixels: 1e10,
      maxPixels: LIMIT.maxPixels,
    });
  });

  it('allows exactly maxPixels and refuses one more', async () => {
    const png = await encodeImage(makeImage(10, 10, 1, 3), 'png');
    expect((await decodeImage(png, { maxPixels: 100 })).image.data.length).toBe(100);
    await expectCode(decodeImage(png, { maxPixels: 99 }), 'TW_IMAGE_TOO_LARGE', 413);
  });

  it('refuses SVG (before sharp renders it) and formats sharp reads but we do not accept', async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>';
    for (const text of [svg, `<?xml version="1.0"?>\n${svg}`, `\ufeff  ${svg}`]) {
      const err = await expectCode(decodeImage(Buffer.from(text), LIMIT), 'TW_IMAGE_FORMAT_UNSUPPORTED', 415);
      expect(err.details).toEqual({ format: 'svg' });
    }
    // Malformed SVG: sharp itself would call this invalid (400); refusing by signature first gives 415.
    const broken = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8"');
    await expect(sharp(broken).metadata()).rejects.toThrow();
    const err = await expectCode(decodeImage(broken, LIMIT), 'TW_IMAGE_FORMAT_UNSUPPORTED', 415);
    expect(err.details).toEqual({ format: 'svg' });
    await expectCode(
      decodeImage(Buffer.from('<html><body>hi</body></html>'), LIMIT),
      'TW_IMAGE_FORMAT_UNSUPPORTED',
      415,
    );
    const avif = await sharp(Buffer.alloc(8 * 8 * 3, 128), { raw: { width: 8, height: 8, channels: 3 } })
      .avif()
      .toBuffer();
    expect((await sharp(avif).metadata()).format).toBe('heif');
    await expectCode(decodeImage(avif, LIMIT), 'TW_IMAGE_FORMAT_UNSUPPORTED', 415);
  });
});

describe('layout helpers', () => {
  it('decoded pixels can be transferred to a worker', async () => {
    const { image } = await decodeImage(await encodeImage(makeImage(7, 3, 3), 'png'), LIMIT);
    // The data owns its buffer: transferring it moves exactly this image, nothing of sharp's pool.
    expect(image.data.byteOffset).toBe(0);
    expect(image.data.buffer.byteLength).toBe(image.data.byteLength);
    const copy = structuredClone(image, { transfer: [image.data.buffer as ArrayBuffer] });
    expect(copy.data.length).toBe(7 * 3 * 3);
    expect(image.data.length).toBe(0); // detached
  });

  it('toChannels/fromChannels are inverse, planar per channel', () => {
    const img = makeImage(5, 4, 3, 5);
    const planes = toChannels(img);
    expect(planes).toHaveLength(3);
    expect(planes[1][2]).toBe(img.data[2 * 3 + 1]);
    expect(fromChannels(planes, 5, 4)).toEqual(img);
    expect(() => fromChannels([planes[0], planes[1]], 5, 4)).toThrow(RangeError);
  });

  it('toGrey weights R, G, B by 0.299, 0.587, 0.114', () => {
    const img: FloatImage = {
      data: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]),
      width: 3,
      height: 1,
      channels: 3,
    };
    expect(Array.from(toGrey(img).data)).toEqual([0.299, 0.587, 0.114].map(Math.fround));
  });
});
