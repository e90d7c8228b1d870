/**
 * Denoise: pick or drop an image (or the example), optionally add synthetic noise of a chosen family and level
 * first (then the clean image is known and PSNR is shown), choose the method (Noise2Score or MID), the noise family
 * and the level or auto; POST /v1/denoise?output=json; noisy and denoised side by side with a slider, the level
 * used (estimated or given), timings, and a download link. "Compare methods" sends the same noisy image to every
 * ready model that applies (each Noise2Score version of the family, each MID model), one after the other, and
 * shows them side by side and under a slider (any two), with PSNR against the clean image when it is known and the
 * time each took.
 */
import { addNoise, type NoiseFamily } from '../../../src/denoise/noise.js';
import { psnr } from '../../../src/imaging/metrics.js';
import { Rng } from '../../../src/util/random.js';
import { api, apiJson, clearError, showError } from '../api.js';
import { checkbox, clear, facts, field, fmt, h, numberInput, select } from '../dom.js';
import {
  base64ToBlob,
  blobImage,
  decodeImage,
  downloadUrl,
  encodePng,
  quantize,
  type Raster,
} from '../image.js';
import { comparison, figure, imagePicker, page, progressBar } from '../widgets.js';

interface DenoiseJson {
  image: string;
  contentType: string;
  width: number;
  height: number;
  channels: number;
  method: string;
  noise: string;
  level: number;
  levelEstimated: boolean;
  model: string;
  masks?: number;
  /** Noise2Score: pixel values read 0 or 255, treated as clipped (censored) by the service. */
  clippedPixels?: number;
  /** Noise2Score Gaussian: 'wiener' when the pilot-guided Wiener stage ran after Tweedie, else 'none'. */
  refine?: string;
  /** A level outside the model's training range, and the like. */
  warnings?: string[];
  timings: Record<string, number>;
}

/** Level defaults per family, in the units of the API (Gaussian sigma 0-255, Poisson zeta, Gamma k). */
const DEFAULT_LEVEL: Record<NoiseFamily, number> = { gaussian: 25, poisson: 0.02, gamma: 20 };

export function denoisePage(): HTMLElement {
  const { section, errors } = page(
    'denoise',
    'Denoise',
    'Noise2Score (Gaussian, Poisson, Gamma noise; blind or known level) or MID (real camera noise). ' +
      'Add synthetic noise to a clean image to see PSNR against it.',
  );
  let original: Raster | null = null;
  let originalName = 'image';

  const method = select(
    [
      ['noise2score', 'Noise2Score'],
      ['mid', 'MID (real camera noise)'],
    ],
    'noise2score',
  );
  const noise = select(['gaussian', 'poisson', 'gamma'], 'gaussian');
  const auto = checkbox('estimate the level (auto)', true);
  const level = numberInput(25, { step: 'any', min: 0, disabled: true });
  const estimator = select(['wavelet', 'tv'], 'wavelet');
  const ensemble = select(['1', '2', '4', '8'], '1');
  // The Wiener stage after Tweedie's formula: Gaussian noise only (Poisson and Gamma have none).
  const refine = select(['wiener', 'none'], 'wiener');
  const synth = checkbox('add synthetic noise first (the picked image is then the clean reference)', false);
  const synthLevel = numberInput(25, { step: 'any', min: 0 });
  const synthSeed = numberInput(1, { min: 0, step: 1 });
  // MID's own parameters: random masks averaged (empty: the model's measured default) and their seed.
  const masks = h('input', { type: 'number', min: 1, max: 64, step: 1, placeholder: 'default' });
  const midSeed = numberInput(0, { min: 0, step: 1 });
  const run = h('button', { type: 'button', class: 'primary', disabled: true }, 'Denoise');
  const status = h('p', { class: 'status', 'aria-live': 'polite' });
  const progress = progressBar('Denoising');
  const output = h('div', { class: 'output', 'data-testid': 'denoise-output' });
  const preview = h('div', { class: 'preview' });

  auto.input.addEventListener('change', () => {
    level.disabled = auto.input.checked;
  });

  // The controls of one method only: Noise2Score's (family, level, estimator, ensemble) or MID's (masks, seed).
  // Hidden fields are also disabled, so neither the keyboard nor a script reaches a control that does not apply.
  const n2sFields = h(
    'div',
    { class: 'method-fields', 'data-method': 'noise2score' },
    field('Noise family', noise),
    auto.wrap,
    field('Level', level, 'Gaussian: sigma on 0-255; Poisson: zeta; Gamma: shape k'),
    field('Level estimator (auto)', estimator),
    field('Self-ensemble (Noise2Score)', ensemble, 'Flips averaged: better, and that many times slower'),
    field(
      'Wiener stage (Gaussian)',
      refine,
      "A second filter guided by the network's output: none answers Tweedie's output",
    ),
  );
  const midFields = h(
    'div',
    { class: 'method-fields', 'data-method': 'mid', hidden: true },
    field('Masks (MID)', masks, "Random masks averaged; empty: the model's measured default"),
    field('Mask seed (MID)', midSeed),
  );
  const showMethodFields = () => {
    const mid = method.value === 'mid';
    n2sFields.hidden = mid;
    midFields.hidden = !mid;
    for (const c of [noise, estimator, ensemble, auto.input]) c.disabled = mid;
    level.disabled = mid || auto.input.checked;
    refine.disabled = mid || noise.value !== 'gaussian';
    masks.disabled = !mid;
    midSeed.disabled = !mid;
  };
  method.addEventListener('change', showMethodFields);
  noise.addEventListener('change', () => {
    const d = DEFAULT_LEVEL[noise.value as NoiseFamily];
    level.value = String(d);
    synthLevel.value = String(d);
    refine.disabled = method.value === 'mid' || noise.value !== 'gaussian';
  });

  async function pick(blob: Blob, name: string) {
    try {
      clearError(errors);
      original = await decodeImage(blob, 512);
      originalName = name.replace(/\.[^.]+$/, '');
      clear(preview);
      preview.append(
        figure(
          blobImage(await encodePng(original), `picked image ${name}`),
          `${name}: ${original.width}x${original.height}, ${original.channels === 1 ? 'grey' : 'colour'}`,
        ),
      );
      run.disabled = false;
      compareButton.disabled = false;
    } catch (err) {
      showError(errors, err);
    }
  }

  const exampleButton = h('button', { type: 'button' }, 'Use the example image');
  exampleButton.addEventListener('click', async () => {
    try {
      const res = await fetch('examples/set12-01-96.png');
      await pick(await res.blob(), 'set12-01-96.png');
      synth.input.checked = true;
    } catch (err) {
      showError(errors, err);
    }
  });

  /** The noisy input: synthetic noise on the picked image (clean reference known), or the picked image as is. */
  async function noisyInput(
    picked: Raster,
  ): Promise<{ input: Raster; clean: Raster | null; inputPng: Blob }> {
    const family = noise.value as NoiseFamily;
    let input = picked;
    let clean: Raster | null = null;
    if (synth.input.checked) {
      const lv = Number(synthLevel.value);
      const libLevel = family === 'gaussian' ? lv / 255 : lv;
      const noisy = addNoise(family, picked.data, libLevel, new Rng(Number(synthSeed.value)));
      input = quantize({ ...picked, data: noisy });
      clean = picked;
    }
    return { input, clean, inputPng: await encodePng(input) };
  }

  // --- compare: the same noisy image through every method and model that applies ----------------------------
  const compareButton = h('button', { type: 'button', disabled: true }, 'Compare methods');
  const compareOut = h('div', { class: 'output', 'data-testid': 'denoise-compare' });

  /**
   * What to compare: every ready Noise2Score model of the chosen noise family (each version: the tiers of the
   * repository), at the level given or estimated, and every ready MID model (real camera noise).
   */
  async function compareRuns(): Promise<{ label: string; params: URLSearchParams }[]> {
    const family = noise.value as NoiseFamily;
    const list = await apiJson<{
      models: {
        name: string;
        version: string;
        state: string;
        manifest: { task?: string; noiseFamily?: string } | null;
      }[];
    }>('/v1/models');
    const runs: { label: string; params: URLSearchParams }[] = [];
    for (const m of list.models) {
      if (m.state !== 'ready' || !m.manifest) continue;
      const common = { model: m.name, version: m.version, output: 'json' };
      if (m.manifest.task === 'denoise-score' && m.manifest.noiseFamily === family)
        runs.push({
          label: `Noise2Score ${m.name}@${m.version}`,
          params: new URLSearchParams({
            ...common,
            method: 'noise2score',
            noise: family,
            level: auto.input.checked ? 'auto' : level.value,
            estimator: estimator.value,
            ensemble: ensemble.value,
          }),
        });
      else if (m.manifest.task === 'denoise' && m.manifest.noiseFamily === 'real-camera')
        runs.push({
          label: `MID ${m.name}@${m.version}`,
          params: new URLSearchParams({ ...common, method: 'mid', seed: midSeed.value }),
        });
    }
    return runs;
  }

  compareButton.addEventListener('click', async () => {
    if (!original) return;
    clearError(errors);
    clear(compareOut);
    compareButton.disabled = true;
    try {
      const { input, clean, inputPng } = await noisyInput(original);
      const runs = await compareRuns();
      if (runs.length === 0) throw new Error('No ready model applies to this noise family');
      const results: {
        label: string;
        blob: Blob;
        psnr: number | null;
        serverMs: number;
        roundTripMs: number;
      }[] = [];
      // One after the other, so each time is the method's own (not shared with the others).
      for (const [i, r] of runs.entries()) {
        progress.set(i / runs.length, `comparing: ${r.label} (${i + 1} of ${runs.length})…`);
        const form = new FormData();
        form.append('image', inputPng, `${originalName}-noisy.png`);
        const t0 = performance.now();
        const body = (await (
          await api(`/v1/denoise?${r.params}`, { method: 'POST', body: form })
        ).json()) as DenoiseJson;
        const roundTripMs = performance.now() - t0;
        const blob = base64ToBlob(body.image, body.contentType);
        const out = await decodeImage(blob);
        results.push({
          label: r.label,
          blob,
          psnr: clean && out.data.length === clean.data.length ? psnr(clean.data, out.data) : null,
          serverMs: body.timings.totalMs,
          roundTripMs,
        });
      }
      progress.set(1, `compared ${results.length} methods`);
      const noisyPsnr = clean ? psnr(clean.data, input.data) : null;
      const entries = [
        {
          label: 'noisy input',
          blob: inputPng,
          psnr: noisyPsnr,
          serverMs: Number.NaN,
          roundTripMs: Number.NaN,
        },
        ...results,
      ];
      const table = h(
        'table',
        { 'data-testid': 'denoise-compare-table' },
        h('caption', {}, clean ? 'Against the clean reference' : 'No clean reference: PSNR not available'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['method', 'PSNR (dB)', 'server time', 'round trip'].map((t) => h('th', { scope: 'col' }, t)),
          ),
        ),
        h(
          'tbody',
          {},
          ...results.map((r) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, r.label),
              h('td', {}, r.psnr === null ? '—' : fmt(r.psnr, 2)),
              h('td', {}, `${fmt(r.serverMs, 1)} ms`),
              h('td', {}, `${fmt(r.roundTripMs, 1)} ms`),
            ),
          ),
        ),
      );
      // Slider between any two of them (default: the noisy input against the best result).
      const best = results.reduce((b, r, i) => ((r.psnr ?? -1) > (results[b].psnr ?? -1) ? i : b), 0) + 1;
      const pickA = select(
        entries.map((e, i) => [String(i), e.label]),
        '0',
      );
      const pickB = select(
        entries.map((e, i) => [String(i), e.label]),
        String(best),
      );
      const slot = h('div', { 'data-testid': 'denoise-compare-slider' });
      const showPair = () => {
        const a = entries[Number(pickA.value)];
        const b = entries[Number(pickB.value)];
        clear(slot);
        slot.append(comparison(blobImage(a.blob, a.label), blobImage(b.blob, b.label), [a.label, b.label]));
      };
      pickA.addEventListener('change', showPair);
      pickB.addEventListener('change', showPair);
      showPair();
      compareOut.append(
        h('h3', {}, `Compared on the same ${clean ? 'noisy image (synthetic noise)' : 'image'}`),
        table,
        h('div', { class: 'row' }, field('Left', pickA), field('Right', pickB)),
        slot,
        h(
          'div',
          { class: 'side-by-side' },
          ...entries.map((e) =>
            figure(
              blobImage(e.blob, e.label),
              e.psnr === null ? e.label : `${e.label}: ${fmt(e.psnr, 2)} dB`,
            ),
          ),
        ),
      );
    } catch (err) {
      progress.set(0, 'failed');
      showError(errors, err);
    } finally {
      compareButton.disabled = false;
    }
  });

  run.addEventListener('click', async () => {
    if (!original) return;
    clearError(errors);
    clear(output);
    run.disabled = true;
    progress.set(null, 'denoising…');
    try {
      const family = noise.value as NoiseFamily;
      const { input, clean, inputPng } = await noisyInput(original);
      const mid = method.value === 'mid';
      const params = new URLSearchParams({ method: method.value, output: 'json' });
      if (mid) {
        if (masks.value !== '') params.set('masks', masks.value);
        params.set('seed', midSeed.value);
      } else {
        params.set('noise', family);
        params.set('level', auto.input.checked ? 'auto' : level.value);
        params.set('estimator', estimator.value);
        params.set('ensemble', ensemble.value);
        if (family === 'gaussian') params.set('refine', refine.value);
      }
      const form = new FormData();
      form.append('image', inputPng, `${originalName}-noisy.png`);
      const t0 = performance.now();
      const res = await api(`/v1/denoise?${params}`, { method: 'POST', body: form });
      const body = (await res.json()) as DenoiseJson;
      const roundTrip = performance.now() - t0;
      const resultBlob = base64ToBlob(body.image, body.contentType);
      const result = await decodeImage(resultBlob);

      // MID has no noise family or level (the API reports level 0 for it): its masks are shown instead.
      const rows: [string, string][] = [
        ['method', body.method],
        ['model', body.model],
      ];
      if (body.method === 'mid') {
        if (body.masks !== undefined) rows.push(['masks', String(body.masks)]);
      } else {
        rows.push(['noise', body.noise]);
        rows.push([
          body.levelEstimated ? 'estimated level' : 'level',
          `${fmt(body.level)} (${levelUnit(body.noise)})`,
        ]);
        rows.push(['clipped values', String(body.clippedPixels ?? 0)]);
        if (body.refine !== undefined) rows.push(['refine', body.refine]);
      }
      for (const warning of body.warnings ?? []) rows.push(['warning', warning]);
      if (clean) {
        const ref = clean.data;
        const sameShape = result.data.length === ref.length;
        rows.push(['PSNR noisy', `${fmt(psnr(ref, input.data), 2)} dB`]);
        rows.push(['PSNR denoised', sameShape ? `${fmt(psnr(ref, result.data), 2)} dB` : '—']);
      }
      rows.push([
        'server time',
        `${fmt(body.timings.totalMs, 1)} ms (compute ${fmt(body.timings.computeMs, 1)})`,
      ]);
      rows.push(['round trip', `${fmt(roundTrip, 1)} ms`]);

      const download = h(
        'a',
        {
          href: downloadUrl('denoise', resultBlob),
          download: `${originalName}-denoised.png`,
          class: 'button',
        },
        'Download the result',
      );
      const noisyImg = blobImage(inputPng, 'noisy input');
      const denoisedImg = blobImage(resultBlob, 'denoised result');
      denoisedImg.setAttribute('data-testid', 'denoised-image');
      output.append(
        h(
          'div',
          { class: 'side-by-side' },
          figure(blobImage(inputPng, 'noisy input'), 'noisy'),
          figure(blobImage(resultBlob, 'denoised'), 'denoised'),
        ),
        comparison(noisyImg, denoisedImg, ['noisy', 'denoised']),
        facts(rows),
        download,
      );
      progress.set(1, `done in ${fmt(roundTrip, 0)} ms`);
      status.textContent = `Denoised ${body.width}x${body.height} with ${body.model}`;
    } catch (err) {
      progress.set(0, 'failed');
      showError(errors, err);
    } finally {
      run.disabled = false;
    }
  });

  section.append(
    h(
      'div',
      { class: 'controls' },
      imagePicker('Image to denoise', (files) => pick(files[0], files[0].name)),
      exampleButton,
      preview,
      field('Method', method),
      n2sFields,
      midFields,
      synth.wrap,
      field('Synthetic noise level', synthLevel),
      field('Synthetic noise seed', synthSeed),
      run,
      compareButton,
    ),
    progress.el,
    status,
    output,
    compareOut,
  );
  showMethodFields();
  return section;
}

function levelUnit(noise: string): string {
  if (noise === 'gaussian') return 'sigma, 0-255';
  if (noise === 'poisson') return 'zeta';
  if (noise === 'gamma') return 'shape k';
  return noise;
}
