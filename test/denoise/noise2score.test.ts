import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildScoreNetwork,
  networkMultiple,
  parseScoreArchitecture,
  unetConvs,
} from '../../src/denoise/network.js';
import {
  denoiseNoise2Score,
  ensembleScoreMap,
  planWindows,
  reflectPad,
  scoreMap,
} from '../../src/denoise/noise2score.js';
import { wienerRefine } from '../../src/denoise/wiener.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { predictBatched } from '../../src/nn/batcher.js';
import { Rng } from '../../src/util/random.js';

let tfjs: Tf;

beforeAll(async () => {
  tfjs = (await initTfjs('wasm')).tf;
});

function randomImage(width: number, height: number, channels: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const data = new Float32Array(width * height * channels);
  // Smooth structure plus noise, so the network sees image-like input.
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      for (let k = 0; k < channels; k++) {
        data[(r * width + c) * channels + k] =
          0.5 + 0.3 * Math.sin(r / 9 + k) * Math.cos(c / 13) + 0.1 * rng.normal();
      }
    }
  }
  return data;
}

describe('window planning and padding', () => {
  it('reflect-pads without repeating the edge', async () => {
    const plane = Float32Array.from([1, 2, 3, 4, 5, 6]); // 3 wide, 2 high
    const padded = reflectPad(plane, 3, 2, 5, 3);
    expect(Array.from(padded)).toEqual([1, 2, 3, 2, 1, 4, 5, 6, 5, 4, 1, 2, 3, 2, 1]);
  });

  it('plans aligned windows that cover every pixel with total weight >= 1 (normalised later)', async () => {
    for (const n of [200, 256, 264, 520]) {
      const windows = planWindows(n, 136, 16, 48, 8);
      const total = new Float64Array(n);
      for (const w of windows) {
        expect(w.start % 8).toBe(0);
        for (let p = w.start; p < w.end; p++) total[p] += w.weights[p - w.start];
      }
      for (let p = 0; p < n; p++) {
        expect(total[p]).toBeGreaterThanOrEqual(1 - 1e-6);
        expect(total[p]).toBeLessThanOrEqual(2);
      }
      // Regular windows cross-fade to exactly 1 (only the last, shifted window may add more).
      expect(total[windows[0].end - 48 - 8]).toBeCloseTo(1, 6);
    }
  });
});

describe('buildScoreNetwork', () => {
  it('counts the U-Net options: add-skips read half the channels, convs sets the stages, bad counts throw', async () => {
    // Parameters of a 3x3 (or 1x1) convolution: k*k*in*out + out.
    const conv = (cin: number, cout: number, k = 3) => k * k * cin * cout + cout;
    const [c1, c2, c3] = [8, 16, 24];
    const expected = (skip: 'concat' | 'add', [n1, n2, n3, m2, m1]: number[]) => {
      const j = skip === 'concat' ? 2 : 1;
      return (
        conv(4, c1) +
        (n1 - 1) * conv(c1, c1) +
        conv(c1, c2) +
        (n2 - 1) * conv(c2, c2) +
        conv(c2, c3) +
        (n3 - 1) * conv(c3, c3) +
        conv(c3, 4 * c2, 1) +
        conv(j * c2, c2) +
        (m2 - 1) * conv(c2, c2) +
        conv(c2, 4 * c1, 1) +
        conv(j * c1, c1) +
        (m1 - 1) * conv(c1, c1) +
        conv(c1, 4)
      );
    };
    const widths: [number, number, number] = [c1, c2, c3];
    const cases: ['concat' | 'add' | undefined, [number, number, number, number, number] | undefined][] = [
      [undefined, undefined],
      ['add', [1, 1, 3, 1, 1]],
      ['concat', [3, 1, 2, 2, 1]],
    ];
    const x = tfjs.randomUniform([1, 24, 32, 1]);
    for (const [skip, convs] of cases) {
      const architecture = { kind: 'unet' as const, widths, outputScale: 1, skip, convs };
      const model = buildScoreNetwork(tfjs, architecture, 3);
      expect(model.countParams()).toBe(expected(skip ?? 'concat', unetConvs(architecture)));
      const names = model.layers.map((l) => l.name);
      expect(names.includes('skip1') && names.includes('skip2')).toBe(true);
      expect(model.getLayer('skip1').getClassName()).toBe(skip === 'add' ? 'Add' : 'Concatenate');
      const y = model.predict(x) as import('@tensorflow/tfjs').Tensor;
      expect(y.shape).toEqual([1, 24, 32, 1]);
      y.dispose();
      model.dispose();
    }
    x.dispose();
    expect(unetConvs({ kind: 'unet', widths, outputScale: 1 })).toEqual([2, 2, 3, 2, 2]);
    for (const convs of [
      [1, 1, 0, 1, 1],
      [1, 1, 1, 1],
      [1, 1.5, 1, 1, 1],
    ]) {
      expect(() => buildScoreNetwork(tfjs, { kind: 'unet', widths, outputScale: 1, convs } as never)).toThrow(
        RangeError,
      );
    }
  });
});

describe('parseScoreArchitecture', () => {
  it("reads the trainers' --architecture JSON, defaulting the output scale, and says what is wrong", async () => {
    expect(
      parseScoreArchitecture('{"kind":"unet","widths":[16,48,128],"skip":"add","convs":[1,1,3,1,1]}', 32),
    ).toEqual({ kind: 'unet', widths: [16, 48, 128], skip: 'add', convs: [1, 1, 3, 1, 1], outputScale: 32 });
    expect(parseScoreArchitecture('{"kind":"plain","width":8,"depth":4,"outputScale":2}', 32)).toEqual({
      kind: 'plain',
      width: 8,
      depth: 4,
      outputScale: 2,
    });
    for (const [json, message] of [
      ['{kind', /not JSON/],
      ['{"kind":"resnet"}', /kind/],
      ['{"kind":"unet","widths":[16,48]}', /widths/],
      ['{"kind":"unet","widths":[16,48,128],"convs":[1,1,0,1,1]}', /convs\.2/],
      ['{"kind":"unet","widths":[16,48,128],"skip":"sum"}', /skip/],
      ['{"kind":"unet","widths":[16,48,128],"width":3}', /width/],
    ] as const) {
      expect(() => parseScoreArchitecture(json, 32)).toThrow(message);
    }
  });
});

describe('denoiseNoise2Score', () => {
  it('tiled score equals the whole-image score within 1e-4 (random-weight U-Net)', async () => {
    const architecture = {
      kind: 'unet' as const,
      widths: [8, 8, 8] as [number, number, number],
      outputScale: 1,
    };
    const model = buildScoreNetwork(tfjs, architecture);
    const width = 203;
    const height = 181;
    const plane = randomImage(width, height, 1, 7);
    const whole = await scoreMap(tfjs, model, plane, width, height, {
      tile: 1024,
      multiple: networkMultiple(architecture),
    });
    const tiled = await scoreMap(tfjs, model, plane, width, height, {
      tile: 136,
      overlap: 16,
      margin: 56,
      multiple: networkMultiple(architecture),
    });
    let maxDiff = 0;
    let maxValue = 0;
    for (let i = 0; i < whole.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(whole[i] - tiled[i]));
      maxValue = Math.max(maxValue, Math.abs(whole[i]));
    }
    expect(maxValue).toBeGreaterThan(1e-2); // a meaningful (non-zero) output
    expect(maxDiff).toBeLessThan(1e-4);
    // With too small a margin the windows see their own zero padding: the check above is sensitive to tiling.
    const careless = await scoreMap(tfjs, model, plane, width, height, {
      tile: 64,
      overlap: 8,
      margin: 8,
      multiple: 8,
    });
    let carelessDiff = 0;
    for (let i = 0; i < whole.length; i++)
      carelessDiff = Math.max(carelessDiff, Math.abs(whole[i] - careless[i]));
    expect(carelessDiff).toBeGreaterThan(1e-4);
    model.dispose();
  });

  it('one window: the score is the network output on the reflect-padded plane, cropped, bit for bit', async () => {
    const architecture = {
      kind: 'unet' as const,
      widths: [8, 8, 8] as [number, number, number],
      outputScale: 1,
    };
    const model = buildScoreNetwork(tfjs, architecture, 4);
    for (const [width, height] of [
      [48, 40],
      [45, 37],
    ]) {
      const plane = randomImage(width, height, 1, 3);
      const pw = Math.ceil(width / 8) * 8;
      const ph = Math.ceil(height / 8) * 8;
      const network = await predictBatched(tfjs, model, reflectPad(plane, width, height, pw, ph), [
        ph,
        pw,
        1,
      ]);
      const expected = new Float32Array(width * height);
      for (let r = 0; r < height; r++)
        for (let c = 0; c < width; c++) expected[r * width + c] = network[r * pw + c];
      const score = await scoreMap(tfjs, model, plane, width, height, { tile: 64, multiple: 8 });
      expect(Array.from(score)).toEqual(Array.from(expected));
      expect(Array.from(plane)).toEqual(Array.from(randomImage(width, height, 1, 3))); // input untouched
    }
    model.dispose();
  });

  it('applies Tweedie per channel, clips to [0,1], reports the level, and leaks no tensors', async () => {
    const model = buildScoreNetwork(tfjs, { kind: 'unet', widths: [8, 8, 8], outputScale: 1 });
    const width = 40;
    const height = 36;
    const image = { data: randomImage(width, height, 3, 3), width, height, channels: 3 };
    const before = tfjs.memory().numTensors;
    const sigma = 0.1;
    const result = await denoiseNoise2Score(tfjs, model, image, {
      noise: 'gaussian',
      level: sigma,
      refine: 'none',
    });
    expect(tfjs.memory().numTensors).toBe(before);
    expect(result.level).toBe(sigma);
    expect(result.levelEstimated).toBe(false);
    expect(result.refine).toBe('none');
    // Channel 1 must equal the grey path on channel 1 alone: clip(y + sigma^2 R(y)).
    const plane = new Float32Array(width * height);
    for (let i = 0; i < plane.length; i++) plane[i] = image.data[i * 3 + 1];
    const score = await scoreMap(tfjs, model, plane, width, height);
    const tweedie = new Float32Array(plane.length);
    for (let i = 0; i < plane.length; i++) {
      tweedie[i] = Math.min(1, Math.max(0, plane[i] + sigma * sigma * score[i]));
      expect(Math.abs(result.data[i * 3 + 1] - tweedie[i])).toBeLessThan(1e-6);
      expect(result.data[i * 3]).toBeGreaterThanOrEqual(0);
      expect(result.data[i * 3]).toBeLessThanOrEqual(1);
    }
    // By default (Gaussian) the Wiener stage follows, per channel, with Tweedie's output as the pilot.
    const refined = await denoiseNoise2Score(tfjs, model, image, { noise: 'gaussian', level: sigma });
    expect(refined.refine).toBe('wiener');
    const expected = wienerRefine(plane, tweedie, width, height, sigma);
    let worst = 0;
    for (let i = 0; i < plane.length; i++)
      worst = Math.max(worst, Math.abs(refined.data[i * 3 + 1] - expected[i]));
    expect(worst).toBeLessThan(1e-5);
    expect(refined.timings.refineMs).toBeGreaterThan(0);
    // Poisson and Gamma: no Wiener stage, whatever is asked.
    const poisson = await denoiseNoise2Score(tfjs, model, image, {
      noise: 'poisson',
      level: 0.01,
      refine: 'wiener',
    });
    expect(poisson.refine).toBe('none');
    const auto = await denoiseNoise2Score(tfjs, model, image, { noise: 'gaussian', level: 'auto' });
    expect(auto.levelEstimated).toBe(true);
    // The image has 0.1 white noise on a smooth pattern: the wavelet estimate must find it.
    expect(auto.level).toBeGreaterThan(0.085);
    expect(auto.level).toBeLessThan(0.115);
    const tv = await denoiseNoise2Score(tfjs, model, image, {
      noise: 'gaussian',
      level: 'auto',
      estimator: 'tv',
    });
    expect(tv.levelEstimated).toBe(true);
    expect(tfjs.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('level auto on correlated 8-bit noise (a camera JPEG) uses the TV rule, never a level of about 0', async () => {
    const model = buildScoreNetwork(tfjs, { kind: 'unet', widths: [8, 8, 8], outputScale: 1 });
    const width = 64;
    const height = 64;
    // Noise of std 6/255 held over 2x2 blocks, then rounded to 8 bits: the finest Haar details see none of it.
    const rng = new Rng(5);
    const blockNoise = Float32Array.from(
      { length: (width / 2) * (height / 2) },
      () => (6 / 255) * rng.normal(),
    );
    const data = new Float32Array(width * height);
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        const v = 0.4 + 0.2 * Math.sin(r / 11) + blockNoise[(r >> 1) * (width / 2) + (c >> 1)];
        data[r * width + c] = Math.round(Math.min(1, Math.max(0, v)) * 255) / 255;
      }
    }
    const result = await denoiseNoise2Score(
      tfjs,
      model,
      { data, width, height, channels: 1 },
      { noise: 'gaussian', level: 'auto', estimator: 'wavelet' },
    );
    expect(result.estimator).toBe('tv');
    // The wavelet estimate alone reads about 0 here (Tweedie would return the input); the TV rule does not.
    expect(result.level).toBeGreaterThan(1.5 / 255);
    model.dispose();
  });

  it('self-ensemble: 1 is the plain score; 8 commutes with every flip and transposition of the input', async () => {
    const model = buildScoreNetwork(tfjs, { kind: 'unet', widths: [8, 8, 8], outputScale: 1 }, 11);
    // Not square, so a transposition that forgets to swap width and height cannot pass.
    const width = 40;
    const height = 24;
    const plane = randomImage(width, height, 1, 5);
    const plain = await scoreMap(tfjs, model, plane, width, height);
    expect(await ensembleScoreMap(tfjs, model, plane, width, height, 1)).toEqual(plain);
    const eight = await ensembleScoreMap(tfjs, model, plane, width, height, 8);
    // Transposed input (height x width): the ensemble's output must be the transposed output.
    const transposed = new Float32Array(plane.length);
    for (let r = 0; r < height; r++)
      for (let c = 0; c < width; c++) transposed[c * height + r] = plane[r * width + c];
    const ofTransposed = await ensembleScoreMap(tfjs, model, transposed, height, width, 8);
    // Rotated by 180 degrees.
    const rotated = plane.slice().reverse();
    const ofRotated = await ensembleScoreMap(tfjs, model, rotated, width, height, 8);
    let transposeDiff = 0;
    let rotateDiff = 0;
    let plainDiff = 0;
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        const i = r * width + c;
        transposeDiff = Math.max(transposeDiff, Math.abs(ofTransposed[c * height + r] - eight[i]));
        rotateDiff = Math.max(rotateDiff, Math.abs(ofRotated[plane.length - 1 - i] - eight[i]));
        plainDiff = Math.max(plainDiff, Math.abs(plain[i] - eight[i]));
      }
    }
    expect(transposeDiff).toBeLessThan(1e-5);
    expect(rotateDiff).toBeLessThan(1e-5);
    // The random network is not equivariant itself, so the average really differs from one view.
    expect(plainDiff).toBeGreaterThan(1e-3);
    await expect(async () => ensembleScoreMap(tfjs, model, plane, width, height, 3)).rejects.toThrow(
      RangeError,
    );
    const result = await denoiseNoise2Score(
      tfjs,
      model,
      { data: plane, width, height, channels: 1 },
      { noise: 'gaussian', level: 0.1, ensemble: 8, refine: 'none' },
    );
    for (let i = 0; i < plane.length; i++)
      expect(result.data[i]).toBeCloseTo(Math.min(1, Math.max(0, plane[i] + 0.01 * eight[i])), 6);
    model.dispose();
  });
});
