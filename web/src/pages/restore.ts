/**
 * Restore (RED-Diff with the diffusion prior): pick an image (or a Fashion-MNIST example), draw the mask (brush,
 * box, random pixels) or choose super-resolution or deblurring, and run it as a job: POST /v1/restore?async=true
 * answers 202 + Location, GET /v1/jobs/:id feeds the progress bar, GET /v1/jobs/:id/result is the image.
 * The jobs API returns the final image only; asking for the intermediate trace runs one JSON request instead
 * (output=json&trace=N; the service still turns it into a job when it would outlast its deadline).
 */
import { psnr } from '../../../src/imaging/metrics.js';
import { api, apiJson, clearError, followJob, type JobView, showError } from '../api.js';
import { append, checkbox, clear, facts, field, fmt, h, numberInput, select } from '../dom.js';
import {
  base64ToBlob,
  blobImage,
  decodeImage,
  downloadUrl,
  drawRaster,
  encodePng,
  type Raster,
  toGrey,
} from '../image.js';
import { maskEditor } from '../mask.js';
import { figure, imagePicker, page, progressBar } from '../widgets.js';

/**
 * An optional number field: empty means "the model's measured default" (its manifest's extra.redDiff). The
 * placeholder is short enough for a number box; the field's hint says the rest.
 */
function optionalNumber(attrs: Record<string, string | number>): HTMLInputElement {
  return h('input', { type: 'number', placeholder: 'default', ...attrs });
}

interface RestoreJson {
  image: string;
  contentType: string;
  width: number;
  height: number;
  model: string;
  residual: number;
  psnr: number | null;
  trace: { image: string; steps: number[] } | null;
  timings: Record<string, number>;
}

export function restorePage(): HTMLElement {
  const { section, errors } = page(
    'restore',
    'Restore',
    'RED-Diff with a diffusion prior: inpainting (draw the missing pixels), super-resolution, deblurring. ' +
      'Grey images; the service picks the prior by image size (ddpm-fashion-mnist up to 32x32) unless one is ' +
      'named. A 32x32 image takes seconds.',
  );
  let clean: Raster | null = null;
  let controller: AbortController | null = null;

  const size = select(
    [
      ['32', '32 px (Fashion-MNIST size)'],
      ['64', '64 px'],
      ['128', '128 px'],
      ['0', 'original size'],
    ],
    '32',
  );
  const task = select(
    [
      ['inpaint', 'Inpaint (mask: brush, box or random pixels)'],
      ['super-resolution', 'Super-resolution'],
      ['deblur', 'Deblur'],
    ],
    'inpaint',
  );
  const simulate = checkbox('the image is clean: degrade it first and report PSNR against it', true);
  const factor = select(['2', '4'], '2');
  const kernel = select(['avg', 'bicubic'], 'avg');
  const blur = select(['gaussian', 'uniform'], 'gaussian');
  const blurSize = numberInput(9, { min: 1, max: 31, step: 2 });
  const blurWidth = numberInput(2, { min: 0.1, max: 20, step: 'any' });
  // The prior: the service picks one by the image's size unless a model is named (diffusion models only).
  const prior = select([['', 'default (chosen by the service from the image size)']], '');
  let modelsListed = false;
  const listModels = async () => {
    if (modelsListed) return;
    modelsListed = true;
    try {
      const res = await apiJson<{
        models: { name: string; version: string; state: string; manifest: { task?: string } | null }[];
      }>('/v1/models');
      for (const m of res.models)
        if (m.manifest?.task === 'diffusion-eps')
          prior.append(
            h('option', { value: `${m.name}@${m.version}` }, `${m.name}@${m.version} (${m.state})`),
          );
    } catch {
      modelsListed = false; // the page still works with the default; errors show when restoring
    }
  };
  prior.addEventListener('focus', listModels);
  const steps = numberInput(100, { min: 2, max: 1000, step: 1 });
  const lambda = optionalNumber({ min: 0, max: 10, step: 'any' });
  const lr = optionalNumber({ min: 0.001, max: 1, step: 'any' });
  const tMax = optionalNumber({ min: 1, max: 999, step: 1 });
  const init = select([['', "model's default"], 'smooth', 'pinv'], '');
  const seed = numberInput(0, { min: 0, step: 1 });
  const trace = numberInput(0, { min: 0, max: 16, step: 1 });
  const run = h('button', { type: 'button', class: 'primary', disabled: true }, 'Restore');
  const cancel = h('button', { type: 'button', disabled: true }, 'Cancel');
  const progress = progressBar('RED-Diff progress');
  const output = h('div', { class: 'output', 'data-testid': 'restore-output' });
  const observedCanvas = h('canvas', { class: 'pixelated', 'aria-label': 'observed input' });
  const editor = maskEditor(() => updateObserved());

  const srFields = h('div', { class: 'row', hidden: true }, field('Factor', factor), field('Kernel', kernel));
  const blurFields = h(
    'div',
    { class: 'row', hidden: true },
    field('Blur', blur),
    field('Kernel size (odd)', blurSize),
    field('Gaussian width (pixels)', blurWidth),
  );
  const workArea = h(
    'div',
    { class: 'columns', hidden: true },
    h('div', {}, editor.el, srFields, blurFields),
    figure(observedCanvas, "observed y (simulated in the browser with the service's operator)"),
  );
  const showTaskFields = () => {
    editor.el.hidden = task.value !== 'inpaint';
    srFields.hidden = task.value !== 'super-resolution';
    blurFields.hidden = task.value !== 'deblur';
    updateObserved();
  };
  task.addEventListener('change', showTaskFields);
  for (const c of [factor, kernel, blur, blurSize, blurWidth, simulate.input])
    c.addEventListener('change', updateObserved);

  /** The measurement y as the service will see it (for display; the service computes its own). */
  function observed(): Raster | null {
    if (!clean) return null;
    if (!simulate.input.checked && task.value !== 'inpaint') return clean;
    if (task.value === 'inpaint') {
      const m = editor.mask();
      return { ...clean, data: clean.data.map((v, i) => (m[i] ? 0 : v)) };
    }
    if (task.value === 'super-resolution') return averagePool(clean, Number(factor.value));
    return circularBlur(clean, blur.value, Number(blurSize.value), Number(blurWidth.value));
  }

  const runHint = h('small', { class: 'hint', 'data-testid': 'restore-hint' });
  let running = false;
  /** Restore runs only on a picked image and, to inpaint, on a mask that marks a pixel missing (else 422). */
  function updateRun() {
    const noMask = task.value === 'inpaint' && editor.missingCount() === 0;
    run.disabled = running || !clean || (clean !== null && noMask);
    runHint.textContent = !clean
      ? 'Pick an image or use the example first.'
      : noMask
        ? 'Mark the missing pixels on the mask first (brush, box or random pixels).'
        : '';
  }

  function updateObserved() {
    const y = observed();
    if (y) drawRaster(y, observedCanvas);
    // The editor and the observed image appear with an image: before, they would be an empty and a black box.
    workArea.hidden = !clean;
    updateRun();
  }

  async function pick(blob: Blob) {
    try {
      clearError(errors);
      const side = Number(size.value);
      clean = toGrey(await decodeImage(blob, side > 0 ? side : undefined));
      editor.setImage(clean);
      updateObserved();
    } catch (err) {
      showError(errors, err);
    }
  }

  const example = h('button', { type: 'button' }, 'Use a Fashion-MNIST example');
  example.addEventListener('click', async () => {
    try {
      await pick(await (await fetch('examples/fashion-clean-0.png')).blob());
      // The example comes with a mask (a centred box, a quarter of the image), so Restore can run at once.
      if (clean && task.value === 'inpaint') {
        const w = Math.max(1, Math.round(clean.width / 2));
        const hh = Math.max(1, Math.round(clean.height / 2));
        editor.addBox(Math.floor((clean.width - w) / 2), Math.floor((clean.height - hh) / 2), w, hh);
      }
    } catch (err) {
      showError(errors, err);
    }
  });

  cancel.addEventListener('click', () => controller?.abort());

  run.addEventListener('click', async () => {
    if (!clean) return;
    clearError(errors);
    clear(output);
    running = true;
    updateRun();
    cancel.disabled = false;
    controller = new AbortController();
    const started = performance.now();
    try {
      const params = new URLSearchParams({
        task: task.value,
        simulate: String(simulate.input.checked),
        steps: steps.value,
        seed: seed.value,
      });
      // Left empty, these take the model's measured defaults (the JSON answer's params say what ran).
      for (const [name, input] of [
        ['lambda', lambda],
        ['lr', lr],
        ['tMax', tMax],
        ['init', init],
      ] as const)
        if (input.value !== '') params.set(name, input.value);
      if (prior.value) {
        const [name, version] = prior.value.split('@');
        params.set('model', name);
        params.set('version', version);
      }
      if (task.value === 'super-resolution') {
        params.set('factor', factor.value);
        params.set('kernel', kernel.value);
      }
      if (task.value === 'deblur') {
        params.set('blur', blur.value);
        params.set('size', blurSize.value);
        params.set('width', blurWidth.value);
      }
      const traceCount = Number(trace.value);
      if (traceCount > 0) {
        params.set('output', 'json');
        params.set('trace', String(traceCount));
      } else params.set('async', 'true');

      const form = new FormData();
      form.append('image', await encodePng(clean), 'image.png');
      if (task.value === 'inpaint') {
        const m = editor.mask();
        const maskRaster: Raster = {
          width: clean.width,
          height: clean.height,
          channels: 1,
          data: Float32Array.from(m),
        };
        form.append('mask', await encodePng(maskRaster), 'mask.png');
      }
      progress.set(
        traceCount > 0 ? null : 0,
        traceCount > 0 ? 'running (one request, no progress)…' : 'submitting…',
      );
      const res = await api(`/v1/restore?${params}`, {
        method: 'POST',
        body: form,
        signal: controller.signal,
      });

      let resultBlob: Blob;
      let json: RestoreJson | null = null;
      let residual: string | null = res.headers.get('x-residual');
      let model: string | null = res.headers.get('x-model');
      let jobId: string | null = null;
      if (res.status === 202) {
        // A job: follow its progress to the end, then fetch the image.
        const view = (await res.json()) as JobView;
        jobId = view.id;
        const result = await followJob(
          view.id,
          (v) => progress.set(v.progress.fraction, `${v.state}: ${v.progress.message}`),
          controller.signal,
        );
        residual = result.headers.get('x-residual');
        model = result.headers.get('x-model');
        resultBlob = await result.blob();
      } else {
        json = (await res.json()) as RestoreJson;
        residual = json.residual.toExponential(3);
        model = json.model;
        resultBlob = base64ToBlob(json.image, json.contentType);
      }
      const elapsed = performance.now() - started;
      progress.set(1, `done in ${(elapsed / 1000).toFixed(1)} s`);
      const result = toGrey(await decodeImage(resultBlob));
      const rows: [string, string][] = [
        ['task', task.value],
        ['model', model ?? '—'],
        ['steps', steps.value],
        ['residual ||y - Hx|| / ||y||', residual ?? '—'],
      ];
      const y = observed();
      if (simulate.input.checked && task.value === 'inpaint' && y)
        rows.push(['PSNR of the observed y (missing = 0)', `${fmt(psnr(clean.data, y.data), 2)} dB`]);
      if (simulate.input.checked && result.data.length === clean.data.length)
        rows.push(['PSNR against the clean image', `${fmt(psnr(clean.data, result.data), 2)} dB`]);
      rows.push(['time', `${(elapsed / 1000).toFixed(2)} s${jobId ? ` (job ${jobId})` : ''}`]);

      const yCanvas = h('canvas', { class: 'pixelated', 'aria-label': 'observed input y' });
      if (y) drawRaster(y, yCanvas);
      const resultImg = blobImage(resultBlob, 'restored image');
      resultImg.setAttribute('data-testid', 'restored-image');
      append(output, [
        h(
          'div',
          { class: 'side-by-side' },
          figure(yCanvas, 'observed y'),
          figure(resultImg, 'RED-Diff result'),
          figure(blobImage(await encodePng(clean), 'reference image'), 'reference'),
        ),
        json?.trace
          ? figure(
              blobImage(
                base64ToBlob(json.trace.image, 'image/png'),
                'intermediate estimates',
                'pixelated trace',
              ),
              `intermediate estimates at steps ${json.trace.steps.join(', ')}`,
              'restore-trace',
            )
          : null,
        facts(rows),
        h(
          'a',
          { href: downloadUrl('restore', resultBlob), download: 'restored.png', class: 'button' },
          'Download',
        ),
      ]);
      output.setAttribute('data-state', 'succeeded');
    } catch (err) {
      progress.set(0, 'failed');
      showError(errors, err);
    } finally {
      running = false;
      updateRun();
      cancel.disabled = true;
      controller = null;
    }
  });

  (section as HTMLElement & { onShow?: () => void }).onShow = () => void listModels();
  section.append(
    h(
      'div',
      { class: 'controls' },
      field('Work size (longest side)', size, 'Larger images are scaled down before upload'),
      imagePicker('Image to restore', (files) => pick(files[0])),
      example,
      field('Task', task),
      field('Prior (diffusion model)', prior),
      simulate.wrap,
    ),
    workArea,
    h(
      'div',
      { class: 'controls' },
      field('Steps', steps, 'one network pass each'),
      field('Prior weight lambda', lambda, "empty: the model's measured default"),
      field('Learning rate', lr, "empty: the model's measured default"),
      field('Start', init, "empty: the model's; smooth: biharmonic / bicubic; pinv: H^+ y"),
      field('Largest timestep', tMax, "empty: the model's measured default"),
      field('Seed', seed),
      field(
        'Trace images',
        trace,
        '0: run as a job with a progress bar; >0: one request with intermediate images',
      ),
      h('div', { class: 'row' }, run, cancel, runHint),
    ),
    progress.el,
    output,
  );
  showTaskFields();
  return section;
}

function averagePool(r: Raster, s: number): Raster {
  const w = Math.floor(r.width / s);
  const hh = Math.floor(r.height / s);
  const data = new Float32Array(w * hh);
  for (let y = 0; y < hh; y++)
    for (let x = 0; x < w; x++) {
      let sum = 0;
      for (let dy = 0; dy < s; dy++)
        for (let dx = 0; dx < s; dx++) sum += r.data[(y * s + dy) * r.width + x * s + dx];
      data[y * w + x] = sum / (s * s);
    }
  return { width: w, height: hh, channels: 1, data };
}

/** Separable circular blur with the service's kernels (normalised Gaussian or box taps). */
function circularBlur(r: Raster, kind: string, size: number, sigma: number): Raster {
  const half = Math.floor(size / 2);
  const taps = Array.from({ length: 2 * half + 1 }, (_, i) =>
    kind === 'uniform' ? 1 : Math.exp(-((i - half) ** 2) / (2 * sigma * sigma)),
  );
  const total = taps.reduce((a, b) => a + b, 0);
  const k = taps.map((t) => t / total);
  const pass = (src: Float32Array, horizontal: boolean) => {
    const out = new Float32Array(src.length);
    for (let y = 0; y < r.height; y++)
      for (let x = 0; x < r.width; x++) {
        let s = 0;
        for (let j = -half; j <= half; j++) {
          const xx = horizontal ? (((x + j) % r.width) + r.width) % r.width : x;
          const yy = horizontal ? y : (((y + j) % r.height) + r.height) % r.height;
          s += k[j + half] * src[yy * r.width + xx];
        }
        out[y * r.width + x] = s;
      }
    return out;
  };
  return { ...r, data: pass(pass(r.data, true), false) };
}
