/**
 * Writes the `heldout` section of every committed model's manifest (models/<name>/<version>/manifest.json; schema:
 * heldoutSectionSchema in src/nn/manifest.ts): the model's figures on data it was not trained on, with the split,
 * the command and the date, so that GET /v1/models shows them (issue 18).
 *
 *  - Noise2Score (grey, wasm as served): measured here on the held-out photographs of bench/denoise/heldout.ts,
 *    selection and report splits, 256x256 crops, seeded noise clipped and rounded to 8 bits; level given and level
 *    estimated (default estimator), PSNR of the clipped output. The Set12 figure is recorded from the manifest's own
 *    metrics (the trainer's validation at export).
 *  - MID, RED-Diff priors, EPS-AD and the classifier: recorded from their benchmark's last run (bench/RESULTS.md,
 *    parsed here, so a figure that is not there fails the run) or from the manifest's own metrics; the entry says
 *    which, and the command that produced it.
 *  - gaussian-blur: `none` (its weights are set analytically; nothing is learned, so nothing is held out).
 *
 *   npx tsx bench/heldout-manifests.ts [--dry-run] [--only name[,name]]
 *
 * Rewrites only the `heldout` key (JSON.stringify, 2 spaces, as the trainers write manifests).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadNoise2ScoreModel } from '../src/denoise/model.js';
import type { NoiseFamily } from '../src/denoise/noise.js';
import { denoiseNoise2Score } from '../src/denoise/noise2score.js';
import { psnr } from '../src/imaging/metrics.js';
import { initTfjs, type Tf } from '../src/nn/backend.js';
import { type HeldoutSection, heldoutSectionSchema, parseModelManifest } from '../src/nn/manifest.js';
import { heldoutNoisy, heldoutSplit, loadHeldoutImage } from './denoise/heldout.js';
import { REPO_ROOT } from './denoise/inputs.js';

const { values } = parseArgs({
  options: { 'dry-run': { type: 'boolean', default: false }, only: { type: 'string' } },
});
const only = values.only ? new Set(values.only.split(',')) : undefined;
const MODELS_DIR = join(REPO_ROOT, 'models');
const COMMAND = 'npx tsx bench/heldout-manifests.ts';
const RESULTS = readFileSync(join(REPO_ROOT, 'bench/RESULTS.md'), 'utf8');
type Entry = NonNullable<HeldoutSection['entries']>[number];

// ---- bench/RESULTS.md --------------------------------------------------------------------------------------------

/** The text of RESULTS.md from the heading `title` to the next `## ` heading. */
function resultsSection(title: string): string {
  const start = RESULTS.indexOf(`## ${title}`);
  if (start < 0) throw new Error(`bench/RESULTS.md has no section '## ${title}'`);
  const next = RESULTS.indexOf('\n## ', start + 3);
  return RESULTS.slice(start, next < 0 ? undefined : next);
}

/** Throws unless `section` names the model version (`name@version` or `models/name/version`): a recorded figure of
 * another version must never be copied into this one's manifest. */
function requireVersion(section: string, name: string, version: string): void {
  if (!section.includes(`${name}@${version}`) && !section.includes(`models/${name}/${version}`))
    throw new Error(
      `${name}@${version}: its bench/RESULTS.md section is about another version; rerun its benchmark first`,
    );
}

/**
 * The number in column `column` (0 = the label) of the table row whose label contains `label`; with `last`, the
 * cell's last number outside parentheses (a cell like '13.54 / 20.34 / 16.94 (+0.48)' gives 16.94).
 */
function tableFigure(section: string, label: string, column = 1, last = false): number {
  const row = section.split('\n').find((line) => line.startsWith('|') && line.split('|')[1]?.includes(label));
  const cell = row?.split('|')[column + 1]?.replace(/\*/g, '').trim();
  const value = Number.parseFloat(
    (last
      ? cell
          ?.replace(/\([^)]*\)/g, '')
          .match(/-?\d+(\.\d+)?/g)
          ?.at(-1)
      : cell) ?? '',
  );
  if (!Number.isFinite(value))
    throw new Error(`no figure for '${label}' (column ${column}) in bench/RESULTS.md`);
  return value;
}

/** The first capture of `pattern` in `text`, as a number. */
function figure(text: string, pattern: RegExp): number {
  const value = Number.parseFloat(text.match(pattern)?.[1] ?? '');
  if (!Number.isFinite(value)) throw new Error(`no figure matching ${pattern}`);
  return value;
}

/** The commit date of the last change to a line of bench/RESULTS.md that matches `regex` (git log -G). */
function resultsDate(regex: string): string {
  const out = execFileSync('git', ['log', '-1', '--format=%cI', `-G${regex}`, '--', 'bench/RESULTS.md'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  }).trim();
  if (!out) throw new Error(`no commit of bench/RESULTS.md changes a line matching ${regex}`);
  return out;
}

// ---- Noise2Score: measured ----------------------------------------------------------------------------------------

const N2S_CASES: Record<NoiseFamily, { level: number; id: string }[]> = {
  gaussian: [
    { level: 15 / 255, id: 'sigma15' },
    { level: 25 / 255, id: 'sigma25' },
    { level: 50 / 255, id: 'sigma50' },
  ],
  poisson: [{ level: 0.01, id: 'zeta0.01' }],
  gamma: [{ level: 100, id: 'k100' }],
};

async function noise2scoreEntries(tf: Tf, dir: string, manifest: Record<string, unknown>): Promise<Entry[]> {
  const family = manifest.noiseFamily as NoiseFamily;
  const model = await loadNoise2ScoreModel(tf, dir);
  const splits = heldoutSplit();
  const date = new Date().toISOString();
  const entries: Entry[] = [];
  for (const split of ['selection', 'report'] as const) {
    const images = await Promise.all(splits[split].map((file) => loadHeldoutImage(file)));
    const figures: Record<string, number> = {};
    for (const c of N2S_CASES[family]) {
      const sums = { noisy: 0, given: 0, auto: 0 };
      for (const image of images) {
        const y = heldoutNoisy(image, family, c.level);
        const input = { data: y, width: image.width, height: image.height, channels: 1 };
        const given = await denoiseNoise2Score(tf, model.model, input, {
          noise: family,
          level: c.level,
          multiple: model.multiple,
        });
        const auto = await denoiseNoise2Score(tf, model.model, input, {
          noise: family,
          level: 'auto',
          multiple: model.multiple,
        });
        sums.noisy += psnr(image.x, y) / images.length;
        sums.given += psnr(image.x, given.data) / images.length;
        sums.auto += psnr(image.x, auto.data) / images.length;
      }
      figures[`psnr_${c.id}_noisy`] = round(sums.noisy);
      figures[`psnr_${c.id}_given`] = round(sums.given);
      figures[`psnr_${c.id}_auto`] = round(sums.auto);
    }
    entries.push({
      role: split,
      data:
        `scikit-image photographs (bench/denoise/heldout.ts), ${split} split: ${images.map((i) => i.name).join(', ')}; ` +
        'grey centre crops 256x256, y with seeded noise, clipped and rounded to 8 bits as an upload; mean PSNR (dB) ' +
        'of the clipped output; given: the true level; auto: estimated by the default estimator',
      figures,
      command: COMMAND,
      date,
      source: 'measured',
      note:
        split === 'selection'
          ? 'The estimators and the peers of bench:denoise-heldout were tuned on this split; the model was not trained on it.'
          : 'Never trained or tuned on. Classical peers on the same inputs: npm run bench:denoise-heldout.',
    });
  }
  const metrics = (manifest.metrics ?? {}) as Record<string, unknown>;
  if (typeof metrics.validationPsnr === 'number') {
    entries.push({
      role: 'final',
      data: `${metrics.validationSet ?? 'Set12'}; ${metrics.validationLevel ?? ''}; ${metrics.validationProtocol ?? ''}`,
      figures: {
        psnr_set12_given: metrics.validationPsnr,
        ...(typeof metrics.validationNoisyPsnr === 'number'
          ? { psnr_set12_noisy: metrics.validationNoisyPsnr }
          : {}),
      },
      command: String(manifest.trainingCommand),
      date: String(manifest.createdAt),
      source: 'recorded',
      note:
        "Recorded from the manifest's metrics (the trainer's validation at export). Earlier models were selected on " +
        'Set12 (issue 18), so it is a final figure only from now on.',
    });
  }
  return entries;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

// ---- the others: recorded -----------------------------------------------------------------------------------------

function midEntries(name: string, version: string, manifest: Record<string, unknown>): Entry[] {
  const section = resultsSection('MID: real camera noise on PolyU validation scenes');
  requireVersion(section, name, version);
  const data =
    'PolyU validation scenes (src/mid/data.ts splitPolyuScenes: 22 crops, 512x512 RGB JPEG, 5 scenes never used in ' +
    'training or tuning), x = mean/255, y = noisy/255; mean PSNR (dB) on RGB';
  const date = resultsDate('service default');
  const common = { role: 'final' as const, data, command: 'npm run bench:mid -- --masks 1,4,8', date };
  if (name === 'mid-rgb-round0') {
    return [
      {
        ...common,
        figures: {
          psnr_noisy: tableFigure(section, 'noisy input'),
          psnr_masks4: tableFigure(section, `${name}@${version}, K = 4`),
        },
        source: 'recorded',
        note: "Recorded from bench/RESULTS.md, section 'MID: real camera noise on PolyU validation scenes'.",
      },
    ];
  }
  const extra = (manifest.extra ?? {}) as {
    guided?: {
      safeguardSweep?: string;
      pilotWeightSweep?: string;
      pilotWeight?: number;
      capsSweep?: string;
      measuredBy?: string;
    };
  };
  const sweep = extra.guided?.safeguardSweep ?? '';
  const sweepText = `${sweep} ${JSON.stringify(extra.guided ?? {})}`;
  // The default's figure: from the pilot-weight sweep when the stage blends the pilot (its chosen weight), else the
  // safeguard sweep's chosen bounds.
  const pilotSweep = extra.guided?.pilotWeightSweep;
  const pilotWeight = extra.guided?.pilotWeight;
  // The energy caps' sweep, when the manifest has one, measured the default last (its chosen setting).
  const capsSweep = extra.guided?.capsSweep;
  const defaultFigure = capsSweep
    ? figure(capsSweep, /chosen: .*?noisy-set mean (\d+\.\d+)/)
    : pilotSweep && pilotWeight
      ? figure(pilotSweep, new RegExp(`[,:] ${pilotWeight} (\\d+\\.\\d+) \\(\\+[\\d.]+, chosen`))
      : figure(sweep, /bound 3 with noisyBound 4 (\d+\.\d+)/);
  return [
    {
      role: 'selection',
      data:
        'PolyU training scenes: 31 tuning crops (centre 256x256) of the 10 noisy-set scenes (bench/mid-sweep.ts); ' +
        'mean PSNR (dB) on RGB',
      figures: {
        psnr_noisy: figure(sweepText, /noisy (\d+\.\d+)/),
        psnr_default: defaultFigure,
      },
      command: capsSweep
        ? 'npm run bench:mid-sweep -- --caps'
        : pilotSweep && pilotWeight
          ? 'npm run bench:mid-sweep -- --pilot-weight 0,0.2,0.3,0.4,0.5,0.6'
          : 'npm run bench:mid-sweep',
      date: dateIn(capsSweep ?? extra.guided?.measuredBy),
      source: 'recorded',
      note:
        "Recorded from the manifest's extra.guided (the sweeps that chose the guided stage, K and the safeguard; " +
        'the last one run gives the default). The noisy shots of ' +
        'these scenes fed training (their means never did): a selection figure, not an unseen one.',
    },
    {
      ...common,
      figures: {
        psnr_noisy: tableFigure(section, 'noisy input'),
        psnr_default: tableFigure(section, '(service default)'),
        psnr_masks8_average: tableFigure(section, `${name}@${version}, K = 8, average only`),
        psnr_opencv_nlm_tuned: tableFigure(section, 'OpenCV'),
        psnr_noise2score_tv: tableFigure(section, 'blind, estimator = tv'),
      },
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'MID: real camera noise on PolyU validation scenes'; default = K 8 + " +
        'the guided stage (the service default).',
    },
  ];
}

function dateIn(text: string | undefined): string {
  const m = text?.match(/(\d{4}-\d\d-\d\d)(T\d\d:\d\d)?/);
  if (!m) throw new Error(`no date in '${text}'`);
  return new Date(`${m[1]}${m[2] ?? 'T00:00'}:00Z`).toISOString();
}

function naturalPriorEntries(version: string): Entry[] {
  const sweep = resultsSection('RED-Diff defaults for the natural prior, chosen on held-out crops');
  requireVersion(sweep, 'ddpm-natural-grey', version);
  const holes = resultsSection("RED-Diff inside holes: settings by the mask's hole radius");
  requireVersion(holes, 'ddpm-natural-grey', version);
  const holeDate = resultsDate('RED-Diff inside holes: settings');
  const windowed = resultsSection('RED-Diff inside holes: a window around them');
  requireVersion(windowed, 'ddpm-natural-grey', version);
  const windowDate = resultsDate('RED-Diff inside holes: a window');
  const coarse = resultsSection('RED-Diff inside holes: coarse to fine');
  requireVersion(coarse, 'ddpm-natural-grey', version);
  const coarseDate = resultsDate('RED-Diff inside holes: coarse to fine');
  return [
    {
      role: 'selection',
      data:
        'centre 64x64 crops of train400 test_361, 368, 375, 382, 389, 396, 50% random-pixel masks seeded 50200 + ' +
        'image number; 100 steps; mean PSNR (dB)',
      figures: {
        psnr_biharmonic: tableFigure(sweep, 'biharmonic (scikit-image)'),
        psnr_default: tableFigure(sweep, 'RED-Diff smooth start, t from 30, lambda 0.05, lr 0.01'),
      },
      command: `nice -n 10 npx tsx bench/restore-sweep.ts heldout "$(cat configs.json)"`,
      date: dateIn(sweep.match(/Command:[^\n]*\n?[^\n]*/)?.[0]),
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff defaults for the natural prior'. This prior was trained on " +
        "all of train400 (trainingData), these crops' images included: they held out the settings, not the weights.",
    },
    {
      role: 'final',
      data: 'Set12, 12 centre 64x64 crops, 50% random-pixel masks (the restore section problems); mean PSNR (dB)',
      figures: {
        psnr_missing50_default: figure(sweep, /50% missing (\d+\.\d+) dB/),
        psnr_missing50_biharmonic: figure(sweep, /50% missing[^;]*; scikit-image biharmonic (\d+\.\d+)/),
        psnr_sr2_default: figure(sweep, /x2 super-resolution (\d+\.\d+)/),
        psnr_sr2_bicubic: figure(sweep, /x2 super-resolution[^;]*; bicubic (\d+\.\d+)/),
      },
      command: 'npx tsx bench/restore.ts --fashion 1 --no-speed --no-write --sequential',
      date: dateIn(sweep.match(/Command:[^\n]*\n?[^\n]*/)?.[0]),
      source: 'recorded',
      note: "Recorded from bench/RESULTS.md ('Set12 afterwards'); not used to choose the defaults.",
    },
    {
      role: 'selection',
      data:
        'centre 64x64 crops of 12 of train400 test_361..394 (every 3rd), a centred 32x32 hole; 100 steps; mean PSNR ' +
        '(dB) inside the hole',
      figures: {
        psnr_hole_biharmonic: tableFigure(holes, 'biharmonic (scikit-image)', 3),
        psnr_hole_default: tableFigure(holes, 'smooth, t 400, lambda 0.1, lr 0.02 (chosen)', 3),
      },
      command: "HELDOUT=12 ONLY=heldout-box32 nice -n 10 npx tsx bench/restore-sweep.ts heldout '<settings>'",
      date: holeDate,
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff inside holes' (the hole settings, extra.redDiff.holes). " +
        'This prior was trained on all of train400: these crops held out the settings, not the weights.',
    },
    {
      role: 'selection',
      data:
        'scikit-image selection photographs (brick, chelsea, coins, gravel, motorcycle_left; bench/denoise/heldout.ts), ' +
        'grey 256x256 centre crops, a 32x32 hole at 3 places; hole settings, 100 steps; mean PSNR (dB) inside the hole',
      figures: {
        psnr_hole_biharmonic: tableFigure(windowed, 'biharmonic (scikit-image)'),
        psnr_hole_default: tableFigure(windowed, 'window margin 64, one run (chosen)'),
        psnr_hole_window64_mean2: tableFigure(windowed, 'window margin 64, mean of 2 runs'),
        psnr_hole_biharmonic_centre: tableFigure(windowed, 'biharmonic (scikit-image)', 2),
        psnr_hole_default_centre: tableFigure(windowed, 'window margin 64, one run (chosen)', 2),
        psnr_hole_whole_image_centre: tableFigure(windowed, 'whole image (before)', 2),
      },
      command:
        "POSITIONS=3 ONLY=selection-box32 nice -n 10 npx tsx bench/restore-sweep.ts selection '<settings>'",
      date: windowDate,
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff inside holes: a window around them' (windowMargin of " +
        'extra.redDiff.holes); photographs the prior never saw.',
    },
    {
      role: 'final',
      data: 'Set12, a centred 32x32 hole: 12 centre 64x64 crops and the 12 whole images at 256x256; mean PSNR (dB) inside the hole',
      figures: {
        psnr_hole64_default: tableFigure(windowed, '64x64 crops, centred 32x32 hole, inside the hole', 2),
        psnr_hole64_biharmonic: tableFigure(windowed, '64x64 crops, centred 32x32 hole, inside the hole', 1),
        psnr_hole256_default: tableFigure(
          windowed,
          '256x256 images, centred 32x32 hole, inside the hole',
          2,
          true,
        ),
        psnr_hole256_biharmonic: tableFigure(
          windowed,
          '256x256 images, centred 32x32 hole, inside the hole',
          1,
          true,
        ),
      },
      command:
        'nice -n 10 npx tsx bench/restore.ts --fashion 0 --set12-size 256|64 --only set12-box32 --defaults-only ' +
        '--no-speed --no-write --sequential',
      date: windowDate,
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff inside holes: a window around them'; not used to choose " +
        'the settings.',
    },
    {
      role: 'selection',
      data:
        'scikit-image selection photographs (brick, chelsea, coins, gravel, motorcycle_left; bench/denoise/heldout.ts), ' +
        'grey 256x256 centre crops, a 32x32 hole at 6 places (30 holes); hole settings, coarse to fine; mean PSNR (dB) ' +
        'inside the hole',
      figures: {
        psnr_hole_biharmonic: tableFigure(coarse, 'biharmonic (scikit-image)'),
        psnr_hole_default: tableFigure(coarse, '(chosen)'),
        psnr_hole_window64_one_run: tableFigure(coarse, 'window margin 64, one run (before)'),
      },
      command:
        "POSITIONS=6 PER_IMAGE=1 ONLY=selection-box32 nice -n 10 npx tsx bench/restore-sweep.ts selection '<settings>'",
      date: coarseDate,
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff inside holes: coarse to fine' (coarse of " +
        'extra.redDiff.holes); photographs the prior never saw.',
    },
    {
      role: 'final',
      data: 'Set12, a centred 32x32 hole: the 12 whole images at 256x256 and 12 centre 64x64 crops, coarse to fine; mean PSNR (dB) inside the hole',
      figures: {
        psnr_hole256_default: tableFigure(
          coarse,
          '256x256 images, centred 32x32 hole, inside the hole',
          2,
          true,
        ),
        psnr_hole256_biharmonic: tableFigure(
          coarse,
          '256x256 images, centred 32x32 hole, inside the hole',
          1,
          true,
        ),
        psnr_hole64_default: tableFigure(coarse, '64x64 crops, centred 32x32 hole, inside the hole', 2),
        psnr_hole64_biharmonic: tableFigure(coarse, '64x64 crops, centred 32x32 hole, inside the hole', 1),
      },
      command:
        'nice -n 10 npx tsx bench/restore.ts --fashion 0 --set12-size 256|64 --only set12-box32 --defaults-only ' +
        '--no-speed --no-write --sequential',
      date: coarseDate,
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff inside holes: coarse to fine'; not used to choose the " +
        'settings.',
    },
  ];
}

function fashionPriorEntries(version: string): Entry[] {
  const section = resultsSection('RED-Diff restoration');
  requireVersion(section, 'ddpm-fashion-mnist', version);
  const rows = section.split('\n').filter((l) => l.startsWith('| Fashion-MNIST'));
  const pick = (task: string, method: string) => {
    const row = rows.find((l) => l.includes(task) && l.split('|')[4]?.includes(method));
    const value = Number.parseFloat(row?.split('|')[5] ?? '');
    if (!Number.isFinite(value)) throw new Error(`no Fashion-MNIST figure for ${task} / ${method}`);
    return value;
  };
  return [
    {
      role: 'selection',
      data:
        'Fashion-MNIST test split (t10k, never trained on): the first 200 images, zero-padded to 32x32, scored on ' +
        '28x28; masks seeded per image; mean PSNR (dB)',
      figures: {
        psnr_missing50_default: pick('50% missing', 'RED-Diff (default'),
        psnr_missing50_biharmonic: pick('50% missing', 'biharmonic'),
        psnr_missing80_default: pick('80% missing', 'RED-Diff (default'),
        psnr_missing80_biharmonic: pick('80% missing', 'biharmonic'),
        psnr_box12_default: pick('12x12 box', 'RED-Diff (default'),
        psnr_box12_biharmonic: pick('12x12 box', 'biharmonic'),
        psnr_sr2_default: pick('super-resolution', 'RED-Diff (default'),
        psnr_sr2_bicubic: pick('super-resolution', 'bicubic'),
      },
      command: 'npm run bench:restore',
      date: dateIn(section.match(/Command:[^\n]*/)?.[0]),
      source: 'recorded',
      note:
        "Recorded from bench/RESULTS.md, section 'RED-Diff restoration'. The defaults (extra.redDiff) were chosen on " +
        'the first 32 of these test images, so these are selection figures, not final ones.',
    },
  ];
}

function epsEntries(version: string, manifest: Record<string, unknown>): Entry[] {
  const section = resultsSection('EPS-AD adversarial detection');
  requireVersion(section, 'eps-ad-fashion-mnist', version);
  const figures: Record<string, number> = {};
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 6 || !/^[a-z][a-z0-9-]*$/.test(cells[1] ?? '') || cells[1] === 'attack') continue;
    const budget = cells[2].replace('/255', '_255').replace('.', '_');
    figures[`auroc_${cells[1]}_${budget}`] = Number.parseFloat(cells[4].replace(/\*/g, ''));
  }
  figures.fpr_at_calibrated_0_05 = figure(section, /Actual false-positive rate[^:]*: (\d+\.\d+)%/) / 100;
  const metrics = (manifest.metrics ?? {}) as Record<string, number>;
  return [
    {
      role: 'selection',
      data: `validation pairs of the Fashion-MNIST training split held out from the detector's steps (${metrics.validationPairs} pairs), FGSM at Linf 1/255 and FGSM-L2`,
      figures: {
        auroc_fgsm: metrics.validationAuroc_fgsm,
        'auroc_fgsm-l2': metrics['validationAuroc_fgsm-l2'],
      },
      command: String(manifest.trainingCommand),
      date: String(manifest.createdAt),
      source: 'recorded',
      note: "Recorded from the manifest's metrics (the trainer's validation).",
    },
    {
      role: 'final',
      data: 'Fashion-MNIST test split (t10k, never trained on): 500 images, 12 attacks; AUROC of EPS-AD, and the false-positive rate at the threshold calibrated for 5 %',
      figures,
      command: 'npm run bench:eps -- --images 500',
      date: new Date(section.match(/Run (\d{4}-\d\d-\d\dT\d\d:\d\dZ)/)?.[1] ?? '').toISOString(),
      source: 'recorded',
      note: "Recorded from bench/RESULTS.md, section 'EPS-AD adversarial detection'.",
    },
  ];
}

function classifierEntries(manifest: Record<string, unknown>): Entry[] {
  const metrics = (manifest.metrics ?? {}) as Record<string, number | string>;
  return [
    {
      role: 'final',
      data: `${metrics.testData} (${metrics.testImages} images)`,
      figures: { test_accuracy: Number(metrics.testAccuracy) },
      command: String(manifest.trainingCommand),
      date: String(manifest.createdAt),
      source: 'recorded',
      note: "Recorded from the manifest's metrics (measured by the trainer after its last step).",
    },
  ];
}

// ---- main ---------------------------------------------------------------------------------------------------------

let tf: Tf | undefined;
for (const name of readdirSync(MODELS_DIR).sort()) {
  if (only && !only.has(name)) continue;
  for (const version of readdirSync(join(MODELS_DIR, name)).sort()) {
    const dir = join(MODELS_DIR, name, version);
    const path = join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    let heldout: HeldoutSection;
    if (manifest.task === 'denoise-score') {
      tf ??= (await initTfjs('wasm')).tf;
      heldout = { entries: await noise2scoreEntries(tf, dir, manifest) };
    } else if (name.startsWith('mid-rgb')) heldout = { entries: midEntries(name, version, manifest) };
    else if (name === 'ddpm-natural-grey') heldout = { entries: naturalPriorEntries(version) };
    else if (name === 'ddpm-fashion-mnist') heldout = { entries: fashionPriorEntries(version) };
    else if (name === 'eps-ad-fashion-mnist') heldout = { entries: epsEntries(version, manifest) };
    else if (name === 'classifier-fashion-mnist') heldout = { entries: classifierEntries(manifest) };
    else if (manifest.trainingSteps === 0)
      heldout = {
        none: 'Nothing is learned: the weights are set analytically (trainingData), so no data is held out.',
      };
    else throw new Error(`${name}@${version}: no held-out benchmark is known for this model`);
    heldoutSectionSchema.parse(heldout);
    const next = { ...manifest, heldout };
    const parsed = parseModelManifest(next);
    if (!parsed.ok) throw new Error(`${name}@${version}: ${parsed.error}`);
    console.log(`${name}@${version}: ${JSON.stringify(heldout)}`);
    if (!values['dry-run']) writeFileSync(path, `${JSON.stringify(next, null, 2)}\n`);
  }
}
