import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { psnr, ssim } from '../../src/imaging/metrics.js';

interface MetricsCase {
  name: string;
  width: number;
  height: number;
  channels: number;
  dataRange: number;
  gaussianWeights: boolean;
  x: number[];
  y: number[];
  psnr: number;
  ssim: number;
}

// Produced by test/fixtures/images/generate_metrics.py with scikit-image 0.19.
const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/images/metrics.json', import.meta.url), 'utf8'),
) as { skimage: string; cases: MetricsCase[] };

describe('metrics against scikit-image', () => {
  it('uses a fixture from scikit-image 0.19 with several cases', () => {
    expect(fixture.skimage.startsWith('0.19')).toBe(true);
    expect(fixture.cases.length).toBeGreaterThanOrEqual(5);
  });

  for (const c of fixture.cases) {
    it(`matches PSNR and SSIM: ${c.name}`, () => {
      const x = Float64Array.from(c.x);
      const y = Float64Array.from(c.y);
      expect(Math.abs(psnr(x, y, c.dataRange) - c.psnr)).toBeLessThan(1e-9);
      const s = ssim(x, y, c.width, c.height, c.channels, {
        dataRange: c.dataRange,
        gaussianWeights: c.gaussianWeights,
      });
      expect(Math.abs(s - c.ssim)).toBeLessThan(1e-6);
    });
  }

  it('matches with float32 inputs to float32 precision', () => {
    const c = fixture.cases[0];
    const s = ssim(Float32Array.from(c.x), Float32Array.from(c.y), c.width, c.height, c.channels);
    expect(Math.abs(s - c.ssim)).toBeLessThan(1e-5);
  });
});

describe('metric edge cases', () => {
  const x = Float64Array.from({ length: 144 }, (_, i) => ((i * 37) % 97) / 96);

  it('PSNR is Infinity and SSIM 1 for equal images', () => {
    expect(psnr(x, x)).toBe(Number.POSITIVE_INFINITY);
    expect(ssim(x, x, 12, 12, 1)).toBeCloseTo(1, 12);
  });

  it('PSNR follows 10 log10(peak^2/mse)', () => {
    const y = x.map((v) => v + 0.1);
    expect(psnr(x, y)).toBeCloseTo(20, 9);
    expect(psnr(x, y, 2)).toBeCloseTo(20 + 20 * Math.log10(2), 9);
  });

  it('refuses mismatched sizes and images smaller than the window', () => {
    expect(() => psnr(x, x.subarray(1))).toThrow(RangeError);
    expect(() => ssim(x, x, 12, 11, 1)).toThrow(RangeError);
    expect(() => ssim(x.subarray(0, 100), x.subarray(0, 100), 10, 10, 1)).toThrow(/smaller than/);
  });
});
