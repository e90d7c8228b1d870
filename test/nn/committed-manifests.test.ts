/**
 * Every committed model (models/<name>/<version>/manifest.json) says what it learned from, how, from what, and how
 * it does on data it was not trained on (issue 18): trainingData, trainingCommand, extra.lineage and `heldout`
 * (figures with their split, command and date, written by bench/heldout-manifests.ts; or `none` with the reason).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { validManifest } from './helpers.js';

const MODELS_DIR = join(import.meta.dirname, '../../models');
const folders = readdirSync(MODELS_DIR)
  .flatMap((name) => readdirSync(join(MODELS_DIR, name)).map((version) => `${name}/${version}`))
  .sort();

describe('committed model manifests', () => {
  it('there are committed models to check', () => {
    expect(folders.length).toBeGreaterThan(5);
  });

  it.each(folders)('%s has data, command, lineage and held-out figures', (folder) => {
    const json = JSON.parse(readFileSync(join(MODELS_DIR, folder, 'manifest.json'), 'utf8'));
    const parsed = parseModelManifest(json);
    expect(parsed.ok, parsed.ok ? '' : parsed.error).toBe(true);
    if (!parsed.ok) return;
    const m = parsed.manifest;
    expect(m.trainingData.trim().length).toBeGreaterThan(0);
    expect(m.trainingCommand.trim().length).toBeGreaterThan(0);
    expect(typeof m.extra?.lineage === 'string' && m.extra.lineage.trim().length > 0).toBe(true);
    expect(m.heldout).toBeDefined();
    if (!m.heldout) return;
    if (m.heldout.none !== undefined) {
      // Only a model that learned nothing may say no held-out figure applies.
      expect(m.trainingSteps).toBe(0);
      return;
    }
    for (const entry of m.heldout.entries ?? []) {
      expect(Object.keys(entry.figures).length).toBeGreaterThan(0);
      expect(entry.command.length).toBeGreaterThan(0);
      expect(Date.parse(entry.date)).toBeLessThanOrEqual(Date.now());
      if (entry.source === 'recorded') expect(entry.note ?? '').toMatch(/[Rr]ecorded from/);
    }
  });
});

describe('manifest heldout section', () => {
  const entry = {
    role: 'report',
    data: 'six photographs, sigma 25',
    figures: { psnr_given: 29.1 },
    command: 'npx tsx bench/heldout-manifests.ts',
    date: '2026-12-04T23:00:00Z',
    source: 'measured',
  };
  const parse = (heldout: unknown) => parseModelManifest({ ...validManifest(), heldout });

  it('accepts entries or a reason for none, and keeps them', () => {
    const ok = parse({ entries: [entry] });
    expect(ok.ok && ok.manifest.heldout).toEqual({ entries: [entry] });
    expect(parse({ none: 'weights set analytically' }).ok).toBe(true);
  });

  it.each([
    ['no entries', { entries: [] }, /entries/],
    ['an unknown role', { entries: [{ ...entry, role: 'training' }] }, /role/],
    ['no figures', { entries: [{ ...entry, figures: {} }] }, /figure/],
    ['a figure that is not a number', { entries: [{ ...entry, figures: { psnr: 'high' } }] }, /figures/],
    ['no command', { entries: [{ ...entry, command: '' }] }, /command/],
    ['a bad date', { entries: [{ ...entry, date: 'yesterday' }] }, /date/],
    ['both entries and none', { entries: [entry], none: 'x' }, /either entries or none/],
    ['an empty reason', { none: '' }, /none/],
    ['neither', {}, /either entries or none/],
  ])('rejects %s', (_, heldout, pattern) => {
    const result = parse(heldout);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(pattern);
  });
});
