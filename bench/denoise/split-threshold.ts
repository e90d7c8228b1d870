/**
 * `npx tsx bench/denoise/split-threshold.ts`: where one Noise2Score image on several workers starts to pay, to set
 * SPLIT_MIN_PIXELS. Through the service over HTTP (bench/denoise/service-time.ts), --workers compute workers
 * (default 2), one grey PNG per --sizes side (a centre crop of the held-out timing image, camera.png, with the
 * seeded sigma 25 noise, 8-bit clipped), Gaussian sigma 25 given: two apps, SPLIT_MIN_PIXELS 1 with SPLIT_MAX_LOAD 0
 * (always split, whatever the host's load) and SPLIT_MIN_PIXELS 0 (never), requests one at a time, alternating between the apps, --repeat of each (after a warm-up). Prints the
 * wall medians and their ratio per size, and writes them to bench/RESULTS.md (section denoise-split) unless
 * --no-write.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { planScoreWindows } from '../../src/denoise/noise2score.js';
import { writeResultsSection } from '../results-file.js';
import { heldoutNoisy, loadHeldoutImage } from './heldout.js';
import { greyPng, startDenoiseService, timeServiceDenoise, warmService } from './service-time.js';
import { median } from './timing.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '128,192,256,320,384,512' },
    repeat: { type: 'string', default: '7' },
    workers: { type: 'string', default: '2' },
    'no-write': { type: 'boolean', default: false },
  },
});
const workers = Number(values.workers);
const query = 'noise=gaussian&level=25';
const load0 = loadavg()[0];
const apps = [];
for (const splitMinPixels of [1, 0]) {
  apps.push(
    await startDenoiseService({ model: 'noise2score-gaussian', workers, splitMinPixels, splitMaxLoad: 0 }),
  );
}
try {
  const started = new Date().toISOString();
  const lines = [
    '| side | windows when split | always split (s) | one worker (s) | split / one worker |',
    '|---:|---|---:|---:|---:|',
  ];
  for (const side of values.sizes.split(',').map(Number)) {
    const clean = await loadHeldoutImage('camera.png', side);
    const png = await greyPng(heldoutNoisy(clean, 'gaussian', 25 / 255), clean.width, clean.height);
    for (const app of apps) await warmService(app, png, query);
    const times: number[][] = apps.map(() => []);
    for (let r = 0; r < Number(values.repeat); r++) {
      for (const [i, app] of apps.entries()) times[i].push(await timeServiceDenoise(app, png, query));
    }
    const [split, one] = times.map(median);
    // The plan the split app uses (TILE_SIZE 512, the model's multiple 8); one window: nothing is lent, and the
    // ratio is the measurement's own noise.
    const plan = planScoreWindows(side, side, { tile: 512, multiple: 8 }, workers);
    const windows =
      plan.rows.length * plan.cols.length === 1
        ? '1 (not split)'
        : `${plan.rows.length * plan.cols.length} of ${plan.rows[0].end - plan.rows[0].start}x${plan.cols[0].end - plan.cols[0].start}`;
    lines.push(
      `| ${side} | ${windows} | ${split.toFixed(3)} | ${one.toFixed(3)} | ${(split / one).toFixed(2)} |`,
    );
    console.log(lines.at(-1));
  }
  const section = [
    '## One image on several workers: where a split pays (`npx tsx bench/denoise/split-threshold.ts`)',
    '',
    `Run ${started}; ${cpus().length} cores, load average ${load0.toFixed(1)} at the start and ` +
      `${loadavg()[0].toFixed(1)} at the end (the cores are shared with other jobs). Through the service over HTTP ` +
      `(bench/denoise/service-time.ts), ${workers} compute workers (wasm), a centre crop of camera.png per side with ` +
      'the seeded sigma 25 noise as a grey PNG, level given; two apps, SPLIT_MIN_PIXELS 1 with SPLIT_MAX_LOAD 0 ' +
      '(always split, whatever the load) and SPLIT_MIN_PIXELS 0 (one worker per request), one request at a time, ' +
      `alternating; wall seconds, median of ${values.repeat} after a warm-up. A size cut into one window is not ` +
      'split (nothing is lent): its ratio is the noise of this measurement on a loaded machine.',
    '',
    ...lines,
  ].join('\n');
  console.log(`\n${section}`);
  if (!values['no-write']) writeResultsSection('denoise-split', section);
} finally {
  for (const app of apps) await app.close();
}
