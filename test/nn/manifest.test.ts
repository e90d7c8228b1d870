import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { MODEL_ID_PATTERN, type ModelManifestInput, parseModelManifest } from '../../src/nn/manifest.js';
import { validManifest } from './helpers.js';

describe('model manifest schema', () => {
  it('accepts a minimal manifest and fills defaults', () => {
    const result = parseModelManifest(validManifest());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.manifest.required).toBe(false);
    expect(result.manifest.metrics).toEqual({});
    expect(result.manifest.description).toBe('');
    expect(result.manifest.noiseFamily).toBeUndefined();
  });

  it('accepts structured architectures, descriptive metrics, unknown tasks and extra', () => {
    const result = parseModelManifest(
      validManifest({
        task: 'my-custom-task',
        architecture: { kind: 'unet', widths: [32, 64] },
        metrics: { psnr: 31.2, backend: 'wasm', partial: true },
        noiseFamily: 'gaussian',
        extra: { multiple: 8 },
      }),
    );
    expect(result.ok).toBe(true);
  });

  it.each([
    ['../etc', false],
    ['.hidden', false],
    ['Upper', false],
    ['a/b', false],
    ['a\\b', false],
    ['', false],
    ['x'.repeat(65), false],
    ['x'.repeat(64), true],
    ['noise2score-gaussian', true],
    ['v1.2_rc-1', true],
  ])('model id %j valid: %s', (id, valid) => {
    expect(MODEL_ID_PATTERN.test(id)).toBe(valid);
    expect(parseModelManifest(validManifest({ name: id })).ok).toBe(valid);
    expect(parseModelManifest(validManifest({ version: id })).ok).toBe(valid);
  });

  it.each([
    ['valueRange reversed', { valueRange: [1, 0] }, /valueRange/],
    ['channels mismatch', { inputShape: [null, null, null, 3] }, /must equal channels/],
    ['unknown format', { format: 'onnx' }, /format/],
    ['bad date', { createdAt: 'yesterday' }, /createdAt/],
    ['negative steps', { trainingSteps: -1 }, /trainingSteps/],
    ['non-numeric metric object', { metrics: { psnr: { value: 1 } } }, /metrics/],
  ])('rejects %s with a message naming the field', (_, overrides, pattern) => {
    const result = parseModelManifest(validManifest(overrides as Partial<ModelManifestInput>));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(pattern);
  });

  it('the committed gaussian-blur manifest is valid and required', async () => {
    const json = JSON.parse(
      await readFile(new URL('../../models/gaussian-blur/1/manifest.json', import.meta.url), 'utf8'),
    );
    const result = parseModelManifest(json);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.manifest.required).toBe(true);
      expect(result.manifest.task).toBe('blur');
      expect(result.manifest.trainingCommand).toBe('npx tsx tools/train/make-tiny-blur.ts');
    }
  });
});
