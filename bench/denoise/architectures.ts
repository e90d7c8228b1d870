/**
 * `npm run bench:denoise-arch`: what a Noise2Score score network costs on the wasm backend against what it buys.
 *
 * For each architecture: parameters, multiply-adds per 512x512 image (counted from the layer shapes), and the
 * network time on a 512x512 image (best of --repeats predictions on one thread, random weights: time does not
 * depend on the values). For trained models passed with `--model label=dir` (a model folder, e.g. one written by
 * tools/train/torch/import-noise2score.ts), also Set12 PSNR at sigma 25 with the level given, by the protocol of
 * the trainer's validation (tools/train/noise2score.ts validationPsnr). Writes the section between
 * <!-- denoise-arch:begin --> and <!-- denoise-arch:end --> of bench/RESULTS.md (--no-write prints it; --note adds a
 * paragraph under the table, e.g. where the --model folders came from).
 */
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { buildScoreNetwork, type ScoreNetworkArchitecture, unetConvs } from '../../src/denoise/network.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { tidyValues } from '../../src/nn/read.js';
import { loadGreyImages } from '../../tools/train/data.js';
import { validationPsnr } from '../../tools/train/noise2score.js';
import { writeResultsSection } from '../results-file.js';
import { REPO_ROOT } from './inputs.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Unet = Extract<ScoreNetworkArchitecture, { kind: 'unet' }>;

const SIZE = 512;

/** Multiply-adds of the U-Net on a SIZE x SIZE image (convolutions only). */
export function unetMacs(architecture: Unet, size = SIZE): number {
  const [c1, c2, c3] = architecture.widths;
  const [n1, n2, n3, m2, m1] = unetConvs(architecture);
  const j = architecture.skip === 'add' ? 1 : 2;
  const p1 = (size / 2) ** 2;
  const p2 = p1 / 4;
  const p3 = p2 / 4;
  const conv = (pixels: number, cin: number, cout: number, k = 3) => pixels * k * k * cin * cout;
  return (
    conv(p1, 4, c1) +
    (n1 - 1) * conv(p1, c1, c1) +
    conv(p2, c1, c2) +
    (n2 - 1) * conv(p2, c2, c2) +
    conv(p3, c2, c3) +
    (n3 - 1) * conv(p3, c3, c3) +
    conv(p3, c3, 4 * c2, 1) +
    conv(p2, j * c2, c2) +
    (m2 - 1) * conv(p2, c2, c2) +
    conv(p2, c2, 4 * c1, 1) +
    conv(p1, j * c1, c1) +
    (m1 - 1) * conv(p1, c1, c1) +
    conv(p1, c1, 4)
  );
}

const unet = (widths: Unet['widths'], skip?: Unet['skip'], convs?: Unet['convs']): Unet => ({
  kind: 'unet',
  widths,
  outputScale: 32,
  ...(skip && { skip }),
  ...(convs && { convs }),
});

/** The candidates timed by default: the default network and the cheaper ones distilled on a GPU. */
const CANDIDATES: { label: string; architecture: Unet }[] = [
  { label: 'default (v7)', architecture: unet([32, 64, 128]) },
  { label: 'default, add-skips', architecture: unet([32, 64, 128], 'add') },
  { label: 'add-skips, 1 conv at level 1', architecture: unet([32, 64, 128], 'add', [1, 2, 3, 2, 1]) },
  { label: 's1', architecture: unet([16, 48, 128], 'add', [1, 1, 3, 1, 1]) },
  { label: 's2', architecture: unet([16, 48, 160], 'add', [1, 1, 3, 1, 1]) },
  { label: 's3', architecture: unet([16, 32, 128], 'add', [1, 2, 4, 2, 1]) },
];

/**
 * Best time of `repeats` predictions per model, taken round-robin (each round times every model once), so that this
 * machine's drift in speed over minutes falls on all of them alike.
 */
async function timeNetworks(tf: Tf, models: LayersModel[], repeats: number): Promise<number[]> {
  const x = tf.randomUniform([1, SIZE, SIZE, 1]);
  const best = models.map(() => Number.POSITIVE_INFINITY);
  for (let r = -1; r < repeats; r++) {
    for (const [i, model] of models.entries()) {
      const t = performance.now();
      await tidyValues(tf, () => model.predict(x) as import('@tensorflow/tfjs').Tensor);
      if (r >= 0) best[i] = Math.min(best[i], (performance.now() - t) / 1000); // round -1: warm-up
    }
  }
  x.dispose();
  return best;
}

/**
 * What reading the output inside tf.tidy cost (the code before src/nn/read.ts): `tf.tidy(() => predict().dataSync())`
 * against `tidyValues`, alternating, on the default network at SIZE x SIZE. Minimum and median ms of each.
 */
async function tidyReadComparison(tf: Tf, model: LayersModel, rounds: number) {
  const x = tf.randomUniform([1, SIZE, SIZE, 1]);
  const inside: number[] = [];
  const outside: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    tf.tidy(() => (model.predict(x) as import('@tensorflow/tfjs').Tensor).dataSync());
    inside.push(performance.now() - t);
    t = performance.now();
    await tidyValues(tf, () => model.predict(x) as import('@tensorflow/tfjs').Tensor);
    outside.push(performance.now() - t);
  }
  x.dispose();
  const stats = (v: number[]) => {
    const s = [...v].sort((a, b) => a - b);
    return `min ${s[0].toFixed(0)} ms, median ${s[Math.floor(s.length / 2)].toFixed(0)} ms`;
  };
  return `Reading the network's output: inside tf.tidy (\`tf.tidy(() => predict(x).dataSync())\`, which makes TF.js walk the returned array) ${stats(inside)}; with tidyValues (src/nn/read.ts) ${stats(outside)}; ${rounds} alternating rounds on the default network at ${SIZE}x${SIZE}.`;
}

const describe = (a: Unet) => `${a.widths.join('/')}, ${a.skip ?? 'concat'}, convs ${unetConvs(a).join('-')}`;

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', multiple: true },
      repeats: { type: 'string' },
      note: { type: 'string' },
      'no-write': { type: 'boolean' },
    },
  });
  const repeats = Number(values.repeats ?? 7);
  const { tf } = await initTfjs('wasm');
  const set12 = await loadGreyImages(join(REPO_ROOT, '..', 'shared', 'data', 'set12'));
  const defaultModel = buildScoreNetwork(tf, CANDIDATES[0].architecture, 1);
  const tidyLine = await tidyReadComparison(tf, defaultModel, 2 * repeats);
  console.log(tidyLine);
  defaultModel.dispose();
  const entries: { label: string; architecture: Unet; model: LayersModel; psnr: string }[] = CANDIDATES.map(
    ({ label, architecture }) => ({
      label,
      architecture,
      model: buildScoreNetwork(tf, architecture, 1),
      psnr: '-',
    }),
  );
  for (const spec of values.model ?? []) {
    const [label, dir] = spec.includes('=') ? spec.split(/=(.*)/s) : [spec, spec];
    const loaded = await loadNoise2ScoreModel(tf, dir);
    const validation = await validationPsnr(tf, loaded.model, 'gaussian', set12, loaded.multiple);
    const architecture = loaded.manifest.architecture as unknown as Unet;
    entries.push({ label, architecture, model: loaded.model, psnr: validation.mean.toFixed(2) });
    console.log(`${label}: Set12 ${validation.mean.toFixed(2)} dB`);
  }
  const seconds = await timeNetworks(
    tf,
    entries.map((e) => e.model),
    repeats,
  );
  const rows = entries.map(
    (e, i) =>
      `| ${e.label} | ${describe(e.architecture)} | ${(e.model.countParams() / 1e6).toFixed(3)} M | ` +
      `${(unetMacs(e.architecture) / 1e9).toFixed(2)} | ${seconds[i].toFixed(3)} | ${(seconds[i] / seconds[0]).toFixed(2)} | ${e.psnr} |`,
  );
  for (const row of rows) console.log(row);
  for (const e of entries) e.model.dispose();
  const section = [
    '## Score-network architectures: cost on wasm against Set12 quality (`npm run bench:denoise-arch`)',
    '',
    `Network time per ${SIZE}x${SIZE} grey image, best of ${repeats} predictions on one wasm thread, taken ` +
      "round-robin over the rows so that drift in the machine's speed falls on all alike (random " +
      'weights for the untrained rows); GMAC counted from the layer shapes; PSNR on Set12 at sigma 25, level ' +
      'given, one view (trained models only). The speed target of `bench:denoise` is the scikit-image NLM time on ' +
      'the same machine (about 0.39 s at 512x512).',
    '',
    '| network | widths, skips, 3x3 convs per stage | parameters | GMAC | seconds | vs default | Set12 dB |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    ...(values.note ? [values.note, ''] : []),
    tidyLine,
    '',
    `Machine: nproc ${cpus().length}, CPU ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
      `Linux ${release()}; Node ${process.version}, @tensorflow/tfjs ${tf.version.tfjs}, wasm SIMD ` +
      `${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}. Command: \`npm run bench:denoise-arch -- ` +
      `${process.argv.slice(2).join(' ')}\`.`,
  ].join('\n');
  if (values['no-write']) console.log(section);
  else writeResultsSection('denoise-arch', section);
}

await main();
