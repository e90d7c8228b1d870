/**
 * The typed manifest sections (src/nn/manifest-sections.ts) read what a model family records in `architecture`
 * and `extra` through zod: present fields typed, absent or malformed ones undefined (the caller's default).
 */
import { describe, expect, it } from 'vitest';
import {
  architectureMultiple,
  detectorSection,
  diffusionSection,
  extraSection,
  midSection,
} from '../../src/nn/manifest-sections.js';

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
});
