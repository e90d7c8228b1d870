/**
 * The typed manifest sections (src/nn/manifest-sections.ts) read what a model family records in `architecture`
 * and `extra` through zod: present fields typed, absent or malformed ones undefined (the caller's default).
 */
import { describe, expect, it } from 'vitest';
import { scheduleFromManifest } from '../../src/adversarial/pipeline.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { midInferenceDefaults } from '../../src/mid/denoise.js';
import {
  architectureMultiple,
  detectorSection,
  diffusionSection,
  extraSection,
  midSection,
  warmupSection,
} from '../../src/nn/manifest-sections.js';
import { warmupShape } from '../../src/nn/repository.js';

describe('manifest sections', () => {
  it('reads the down-sampling factor, with the fallback for a string or missing architecture', () => {
    expect(architectureMultiple({ architecture: { kind: 'unet', multiple: 16 } })).toBe(16);
    expect(architectureMultiple({ architecture: 'unet-small' })).toBe(8);
    expect(architectureMultiple({ architecture: { multiple: 'eight' } }, 4)).toBe(4);
  });

  it('reads a diffusion prior schedule and tuned RED-Diff settings; malformed fields are absent', () => {
    const extra = {
      schedule: { timesteps: 1000, betaStart: 1e-4, betaEnd: 'x' },
      redDiff: { lambda: 0.2, lr: Number.NaN, init: 'pinv' },
    };
    const section = extraSection(diffusionSection, { extra });
    expect(section.schedule).toEqual({ timesteps: 1000, betaStart: 1e-4, betaEnd: undefined });
    expect(section.redDiff).toEqual({ lambda: 0.2, lr: undefined, init: 'pinv', tMax: undefined });
    expect(extraSection(diffusionSection, undefined)).toEqual({ schedule: undefined, redDiff: undefined });
  });

  it('reads MID and detector sections', () => {
    expect(extraSection(midSection, { extra: { maskRatio: 0.3, masksDefault: '4' } })).toEqual({
      maskRatio: 0.3,
      masksDefault: undefined,
    });
    expect(extraSection(detectorSection, { extra: { calibratedFprs: [0.01, 0.05], timesteps: 20 } })).toEqual(
      {
        calibratedFprs: [0.01, 0.05],
        timesteps: 20,
      },
    );
  });

  it('is what every reader of `extra` uses: malformed warm-up size, schedule or guided settings read as absent', () => {
    expect(extraSection(warmupSection, { extra: { warmupSize: 16 } }).warmupSize).toBe(16);
    const manifest = { inputShape: [null, null, null, 1], channels: 1 };
    for (const warmupSize of ['16', 2.5, -8, 0]) {
      expect(warmupShape({ ...manifest, extra: { warmupSize } } as never), String(warmupSize)).toEqual([
        1, 32, 32, 1,
      ]);
    }
    const schedule = scheduleFromManifest({ schedule: { timesteps: 'x', betaEnd: 0.03 } });
    expect(schedule.betas).toEqual(linearSchedule({ betaEnd: 0.03 }).betas);
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 4 } }).guided).toEqual({
      patch: 5,
      search: 7,
      h: 4 / 255,
    });
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: Number.NaN } }).guided).toBeNull();
  });
});
