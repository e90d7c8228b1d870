/**
 * Device-memory estimates that grow as the square of the inputs (src/nn/batcher.ts, a quadratic MemoryProbe): the
 * parabola through three measured sizes, and the committed EPS-AD detector, whose pooled MMD kernel is
 * (reference + n)^2, estimated at no less than its measured peak far beyond the sizes measured; under a small
 * budget the probe itself stays within it.
 */
import { describe, expect, it } from 'vitest';
import { loadEpsAdDetector } from '../../src/adversarial/detector.js';
import { initTfjs } from '../../src/nn/backend.js';
import { configureBatching, estimateDeviceBytes, fitPeak, type MemoryProbe } from '../../src/nn/batcher.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';

const { tf } = await initTfjs('wasm');

const tinyModel = () =>
  tf.sequential({ layers: [tf.layers.dense({ inputShape: [1], units: 1, useBias: false })] });

describe('quadratic memory probes', () => {
  it('fits a parabola through three sizes, and never bends it down', () => {
    const f = (p: number) => 100 + 3 * p + 0.5 * p * p;
    expect(
      fitPeak([
        [1, f(1)],
        [4, f(4)],
        [10, f(10)],
      ]),
    ).toEqual({ fixed: 100, perPixel: 3, perPixelSquared: 0.5 });
    // Concave: the line through the ends, which is above the curve beyond them.
    const g = (p: number) => 100 + 50 * p - p * p;
    const line = fitPeak([
      [1, g(1)],
      [10, g(10)],
      [20, g(20)],
    ]);
    expect(line.perPixelSquared).toBe(0);
    expect(line.fixed + line.perPixel * 30).toBeGreaterThan(g(30));
  });

  it('estimates a probe whose peak is quadratic in n exactly, far beyond the sizes measured', async () => {
    const model = tinyModel();
    // 4 (n^2 + 10 n + 100) bytes for n inputs of 1x1.
    const probe: MemoryProbe = {
      name: 'pairs',
      quadratic: true,
      shapes: (c) => [
        [1, 1, 1, c],
        [4, 1, 1, c],
        [8, 1, 1, c],
      ],
      run: ([n]) => tf.fill([n * n + 10 * n + 100], 0),
    };
    expect(await estimateDeviceBytes(tf, model, [300, 1, 1, 1], probe)).toBe(4 * (300 * 300 + 3000 + 100));
    const wrong: MemoryProbe = { ...probe, name: 'two-shapes', shapes: (c) => [[1, 1, 1, c]] };
    await expect(estimateDeviceBytes(tf, model, [2, 1, 1, 1], wrong)).rejects.toThrow(/expected 3/);
    model.dispose();
  });

  it('measures no probe size the budget cannot hold: smaller sizes on the way, a bound where it stops', async () => {
    const model = tinyModel();
    const bytes = (n: number) => 4 * (n * n + 10 * n + 100);
    const runs: number[] = [];
    const probe = (name: string): MemoryProbe => ({
      name,
      quadratic: true,
      shapes: (c) => [
        [2, 1, 1, c],
        [256, 1, 1, c],
        [512, 1, 1, c],
      ],
      run: ([n]) => {
        runs.push(n);
        return tf.fill([n * n + 10 * n + 100], 0);
      },
    });
    const resident = tf.memory().numBytes;
    try {
      // Room for 300 inputs: 256 is reached through a smaller size, 512 is not measured.
      const budget = resident + bytes(300);
      configureBatching({ memoryBudgetBytes: budget });
      const tight = probe('tight');
      const estimate = await estimateDeviceBytes(tf, model, [1024, 1, 1, 1], tight);
      expect(runs[0]).toBe(2);
      expect(runs).toContain(256);
      expect(Math.max(...runs)).toBeLessThan(300);
      for (const n of runs) expect(resident + bytes(n)).toBeLessThanOrEqual(budget);
      // Above the peak at every size, beyond the sizes measured too.
      for (const n of [1, 2, 100, 256, 300, 512, 1024])
        expect(await estimateDeviceBytes(tf, model, [n, 1, 1, 1], tight)).toBeGreaterThanOrEqual(bytes(n));
      expect(estimate).toBeLessThan(2.2 * bytes(1024));
      // With room enough: exactly the probe's shapes, and the parabola through them; the bound above was not kept.
      runs.length = 0;
      configureBatching({ memoryBudgetBytes: resident + 100 * bytes(512) });
      expect(await estimateDeviceBytes(tf, model, [1024, 1, 1, 1], tight)).toBe(bytes(1024));
      expect(runs).toEqual([2, 256, 512]);
      runs.length = 0;
      expect(await estimateDeviceBytes(tf, model, [1024, 1, 1, 1], probe('roomy'))).toBe(bytes(1024));
      expect(await estimateDeviceBytes(tf, model, [8, 1, 1, 1], probe('roomy'))).toBe(bytes(8));
      expect(runs).toEqual([2, 256, 512]);
    } finally {
      configureBatching({});
      model.dispose();
    }
  });

  it('does not underestimate the EPS-AD kernel stage of 1024 images (measured at 512 at most)', async () => {
    const dir = 'models/eps-ad-fashion-mnist/1';
    const phi = await tf.loadLayersModel(fileSystemIO(dir));
    const detector = await loadEpsAdDetector(tf, dir, phi);
    const probe = detector.memoryProbe();
    const shape = [1024, detector.epsSide, detector.epsSide, 1];
    const estimate = await estimateDeviceBytes(tf, phi, shape, probe);
    const before = tf.memory().numBytes;
    const profile = await tf.profile(async () => {
      await probe.run(shape);
    });
    const peak = profile.peakBytes - before;
    // A line through small batches estimated 47 % of it.
    expect(estimate / peak).toBeGreaterThanOrEqual(1);
    expect(estimate / peak).toBeLessThan(1.1);
    detector.dispose();
    phi.dispose();
  }, 60_000);
});
