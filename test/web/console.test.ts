/**
 * The browser console, end to end: a real service on a random loopback port (the committed Noise2Score and DDPM
 * models, wasm backend), Debian's chromium driven by playwright-core (never Playwright's own browsers), and the
 * console used as a person would: upload an image and get it denoised, draw a mask and watch a RED-Diff job
 * finish, solve transport problems and see the plans drawn, and see an API error with its code.
 * Screenshots go to test/screenshots/ (git-ignored).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, repoRoot, waitFor } from '../helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.join(repoRoot, 'test', 'screenshots');
// The committed EPS-AD detector: the Detect page must show scores with it (a missing model fails the test).
const DETECTOR = 'eps-ad-fashion-mnist';
const MODELS = ['gaussian-blur', 'noise2score-gaussian', 'ddpm-fashion-mnist', DETECTOR];
const EXAMPLES = path.join(repoRoot, 'web', 'public', 'examples');

let app: FastifyInstance;
let base: string;
let context: BrowserContext;
let page: Page;
let userDataDir: string;
let modelsDir: string;
const cspViolations: string[] = [];
// Every console message of the error level (failed loads among them: "the server responded with a status of 404").
const consoleErrors: string[] = [];

async function shot(name: string) {
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

/** The value shown for a key in a page's facts list (<dt>key</dt><dd>value</dd>). */
async function fact(scope: string, key: string): Promise<string> {
  const value = await page
    .locator(`${scope} dl.facts dt`, { hasText: key })
    .first()
    .locator('xpath=following-sibling::dd[1]')
    .textContent();
  return value ?? '';
}

/** Pixels of a canvas that are not the white background. */
async function inkedPixels(selector: string): Promise<number> {
  // Runs in the page (the test's tsconfig has no DOM types, hence `any`).
  return page.locator(selector).evaluate((c: any) => {
    const data = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    if (data) for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] < 740) n++;
    return n;
  });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `No chromium at ${CHROMIUM}: apt-get install chromium (what .ci/run does), or set CHROMIUM_PATH`,
    );
  // The bundle the service serves: built here as `npm run build` builds it, so the test needs no prior build.
  execFileSync(process.execPath, [path.join(repoRoot, 'web', 'build.mjs')], { stdio: 'pipe' });
  mkdirSync(SHOTS, { recursive: true });
  modelsDir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-console-models-'));
  for (const m of MODELS)
    cpSync(path.join(repoRoot, 'models', m), path.join(modelsDir, m), { recursive: true });
  app = await makeApp({ MODELS_DIR: modelsDir, WORKERS: 1 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  base = `http://127.0.0.1:${address.port}`;

  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
    if (msg.type() === 'error') consoleErrors.push(`${msg.text()} ${msg.location().url}`);
  });
  // Model loading (the DDPM takes a few seconds on wasm) overlaps the browser start; wait for it here.
  await waitFor(
    async () =>
      (await app.inject({ url: '/v1/models' }))
        .json()
        .models.every((m: { state: string }) => m.state === 'ready'),
    60_000,
    100,
  );
}, 90_000);

afterAll(async () => {
  await context?.close();
  await app?.close();
  for (const dir of [userDataDir, modelsDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('browser console', () => {
  it('is served at /console/ (and / redirects there) with the API reference linked', async () => {
    const res = await page.goto(`${base}/`);
    expect(res?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe('/console/');
    await page.waitForSelector('body[data-ready="true"]');
    await expect(page.getByRole('tab').allInnerTexts()).resolves.toEqual([
      'Denoise',
      'Restore',
      'Detect',
      'Transport',
      'Models',
    ]);
    // Keyboard: arrow keys move between tabs and show their page.
    await page.getByRole('tab', { name: 'Denoise' }).focus();
    await page.keyboard.press('ArrowRight');
    // The page shows on the hashchange event, after the key press returns: wait for it rather than race it.
    await page.locator('#page-restore').waitFor({ state: 'visible', timeout: 5_000 });
    expect(new URL(page.url()).hash).toBe('#restore');
  });

  it('denoises an uploaded image (synthetic Gaussian noise, sigma 25): PSNR rises', async () => {
    await page.goto(`${base}/console/#denoise`);
    await page
      .locator('#page-denoise input[type=file]')
      .setInputFiles(path.join(EXAMPLES, 'set12-01-96.png'));
    await page.getByLabel('add synthetic noise first', { exact: false }).check();
    await page.getByLabel('Synthetic noise level').fill('25');
    await page.locator('#page-denoise').getByRole('button', { name: 'Denoise', exact: true }).click();
    const result = page.locator('#page-denoise [data-testid=denoised-image]');
    await result.waitFor({ timeout: 30_000 });
    const size = await result.evaluate(async (el: any) => {
      await el.decode();
      return [el.naturalWidth, el.naturalHeight];
    });
    expect(size).toEqual([96, 96]);
    const noisy = Number.parseFloat(await fact('#page-denoise', 'PSNR noisy'));
    const denoised = Number.parseFloat(await fact('#page-denoise', 'PSNR denoised'));
    // sigma 25 noise is ~20.2 dB; the committed model gains several dB on this photo.
    expect(noisy).toBeGreaterThan(19);
    expect(noisy).toBeLessThan(21.5);
    expect(denoised).toBeGreaterThan(noisy + 2);
    expect(await fact('#page-denoise', 'estimated level')).toMatch(/^\d/);
    // The values read 0 or 255, which the service treats as clipped: shown as the answer counts them.
    expect(await fact('#page-denoise', 'clipped values')).toMatch(/^\d+$/);
    // Gaussian noise: the Wiener stage runs by default, and the answer says so.
    expect(await fact('#page-denoise', 'refine')).toBe('wiener');
    const href = await page.locator('#page-denoise a[download]').getAttribute('href');
    expect(href).toMatch(/^blob:/);
    await shot('denoise.png');
  });

  it('draws a mask with the mouse and follows a RED-Diff job to the end', async () => {
    await page.goto(`${base}/console/#restore`);
    await page
      .locator('#page-restore input[type=file]')
      .setInputFiles(path.join(EXAMPLES, 'fashion-clean-0.png'));
    const canvas = page.getByTestId('mask-canvas');
    await page.locator('[data-testid=mask-canvas][data-missing]').waitFor();
    await expect(canvas.getAttribute('data-missing')).resolves.toBe('0');
    const box = await canvas.boundingBox();
    if (!box) throw new Error('mask canvas not visible');
    // A brush stroke across the middle, then a box in the lower left.
    const restore = page.locator('#page-restore');
    await restore.getByLabel('Brush size (pixels)').fill('3');
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.45);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 12 });
    await page.mouse.up();
    const afterBrush = Number(await canvas.getAttribute('data-missing'));
    expect(afterBrush).toBeGreaterThan(20);
    await restore.getByLabel('Tool', { exact: true }).selectOption('box');
    await page.mouse.move(box.x + box.width * 0.15, box.y + box.height * 0.65);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.85, { steps: 5 });
    await page.mouse.up();
    const missing = Number(await canvas.getAttribute('data-missing'));
    expect(missing).toBeGreaterThan(afterBrush + 20);
    await shot('restore-mask.png');

    // 80 steps (~5 s on wasm): enough for RED-Diff to beat the observed image clearly (12 steps would not).
    await restore.getByLabel('Steps', { exact: true }).fill('80');
    const progress: string[] = [];
    page.on('request', (req) => {
      if (/\/v1\/jobs\/[^/]+$/.test(new URL(req.url()).pathname)) progress.push(req.url());
    });
    await restore.getByRole('button', { name: 'Restore', exact: true }).click();
    await page
      .locator('#page-restore [data-testid=restore-output][data-state=succeeded]')
      .waitFor({ timeout: 40_000 });
    // It ran as a job: the console polled GET /v1/jobs/:id, and the progress bar is full.
    expect(progress.length).toBeGreaterThan(0);
    expect(await fact('#page-restore', 'time')).toMatch(/job [0-9a-f-]+/);
    await expect(
      page.getByRole('progressbar', { name: 'RED-Diff progress' }).getAttribute('value'),
    ).resolves.toBe('1');
    const observed = Number.parseFloat(await fact('#page-restore', 'PSNR of the observed'));
    const restored = Number.parseFloat(await fact('#page-restore', 'PSNR against the clean'));
    expect(restored).toBeGreaterThan(observed + 2);
    await shot('restore-result.png');
  });

  it('solves transport problems and draws the plans: Sinkhorn against SNS, then exact', async () => {
    await page.goto(`${base}/console/#transport`);
    await page.getByLabel('n (source points or bins)').fill('20');
    await page.getByLabel('m (target points or bins)').fill('20');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.getByLabel('compare with a second solver').check();
    await page.getByRole('button', { name: 'Solve' }).click();
    await page.getByTestId('ot-plan-1').waitFor({ timeout: 20_000 });
    for (const id of ['ot-plan-0', 'ot-plan-1']) {
      const lines = Number(await page.getByTestId(id).getAttribute('data-lines'));
      // Entropic plans spread mass: more lines than a permutation, at most every pair.
      expect(lines).toBeGreaterThan(20);
      expect(lines).toBeLessThanOrEqual(400);
      expect(await inkedPixels(`[data-testid=${id}]`)).toBeGreaterThan(500);
    }
    expect(await page.getByTestId('ot-convergence').isVisible()).toBe(true);
    expect(await inkedPixels('[data-testid=ot-convergence]')).toBeGreaterThan(300);
    await shot('transport-compare.png');

    // Exact OT between two uniform clouds of 20 points is a permutation: exactly 20 lines.
    await page.getByLabel('compare with a second solver').uncheck();
    await page
      .locator('fieldset', { hasText: 'Solver A' })
      .getByLabel('Solver', { exact: true })
      .selectOption('emd');
    await page.getByRole('button', { name: 'Solve' }).click();
    // The click clears the previous plans at once, so this waits for the new one.
    await page.getByTestId('ot-plan-0').waitFor({ timeout: 20_000 });
    await expect(page.getByTestId('ot-plan-0').getAttribute('aria-label')).resolves.toMatch(
      /^networkSimplex plan/,
    );
    expect(Number(await page.getByTestId('ot-plan-0').getAttribute('data-lines'))).toBe(20);
    await shot('transport-emd.png');

    // Two histograms (1-D bins), closed-form 1-D OT: the plan is drawn as a heat map, monotone, so at most n + m - 1
    // cells.
    await page.getByLabel('Problem', { exact: true }).selectOption('histograms');
    await page.getByLabel('n (source points or bins)').fill('30');
    await page.getByLabel('m (target points or bins)').fill('30');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page
      .locator('fieldset', { hasText: 'Solver A' })
      .getByLabel('Solver', { exact: true })
      .selectOption('emd1d');
    await page.getByRole('button', { name: 'Solve' }).click();
    await page.getByTestId('ot-plan-0').waitFor({ timeout: 20_000 });
    const cells = Number(await page.getByTestId('ot-plan-0').getAttribute('data-lines'));
    expect(cells).toBeGreaterThanOrEqual(30);
    expect(cells).toBeLessThanOrEqual(59);
    expect(await inkedPixels('[data-testid=ot-plan-0]')).toBeGreaterThan(300);
    await shot('transport-histograms.png');
  });

  it('Transport, large clouds: online Sinkhorn as a job, potentials and a sampled plan drawn, page responsive', async () => {
    await page.goto(`${base}/console/#transport`);
    await page.waitForSelector('body[data-ready="true"]');
    const panel = page.getByTestId('ot-large');
    await panel.getByLabel('N (points a cloud', { exact: false }).fill('2000');
    await panel.getByLabel('Large: reg (epsilon)').fill('0.05');
    const posts: string[] = [];
    const polls: string[] = [];
    const onRequest = (req: { url(): string; method(): string; postData(): string | null }) => {
      const p = new URL(req.url()).pathname;
      if (req.method() === 'POST' && p === '/v1/ot/plan') posts.push(req.postData() ?? '');
      if (/^\/v1\/jobs\/[^/]+$/.test(p)) polls.push(p);
    };
    page.on('request', onRequest);
    // A frame ticker in the page: the longest gap between two frames while it works is how long the page froze.
    await page.evaluate(() => {
      const w = globalThis as any;
      w.__frames = { max: 0, count: 0, stop: false };
      let last = performance.now();
      const tick = (t: number) => {
        w.__frames.max = Math.max(w.__frames.max, t - last);
        w.__frames.count++;
        last = t;
        if (!w.__frames.stop) w.requestAnimationFrame(tick);
      };
      w.requestAnimationFrame(tick);
    });
    await panel.getByRole('button', { name: 'Run online Sinkhorn' }).click();
    await page.locator('[data-testid=ot-large-output][data-state=succeeded]').waitFor({ timeout: 60_000 });
    const frames = await page.evaluate(() => {
      const w = globalThis as any;
      w.__frames.stop = true;
      return w.__frames as { max: number; count: number };
    });
    page.off('request', onRequest);
    // One request: online Sinkhorn with a top-1 plan, as a job (followed to the end by polling).
    expect(posts).toHaveLength(1);
    const body = JSON.parse(posts[0]);
    expect(body.x).toHaveLength(2000);
    expect(body.y).toHaveLength(2000);
    expect(body).toMatchObject({
      async: true,
      solver: { solver: 'sinkhorn', online: true },
      output: { topK: 1 },
    });
    expect(polls.length).toBeGreaterThan(0);
    const canvas = page.getByTestId('ot-large-canvas');
    await expect(canvas.getAttribute('data-backend')).resolves.toMatch(/^cpu/);
    await expect(fact('[data-testid=ot-large-output]', 'backend')).resolves.toMatch(/^cpu/);
    expect(Number(await canvas.getAttribute('data-points'))).toBe(4000);
    // Top-1 per row: 2000 pairs, all of them drawn (the sample is capped at 2000).
    expect(Number(await canvas.getAttribute('data-lines'))).toBe(2000);
    expect(await inkedPixels('[data-testid=ot-large-canvas]')).toBeGreaterThan(4000);
    // Coloured by the potentials: many distinct colours, not one per cloud.
    const colours = await canvas.evaluate((c: any) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < d.length; i += 4)
        if (d[i] + d[i + 1] + d[i + 2] < 600) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return seen.size;
    });
    expect(colours).toBeGreaterThan(50);
    expect(await inkedPixels('[data-testid=ot-large-convergence]')).toBeGreaterThan(300);
    await expect(page.getByTestId('ot-large-convergence').getAttribute('aria-label')).resolves.toMatch(
      /ends at \d/,
    );
    // The page never froze: frames kept coming, none more than 500 ms after the previous one.
    expect(frames.count).toBeGreaterThan(10);
    expect(frames.max).toBeLessThan(500);
    // The worker loads from 'self' (the CSP's workerSrc): no violation.
    expect(cspViolations).toEqual([]);
    console.log(
      `large clouds: longest frame gap ${frames.max.toFixed(0)} ms over ${frames.count} frames, draw ${await canvas.getAttribute('data-draw-ms')} ms`,
    );
    await shot('transport-large.png');
  });

  it('shows an API error with its code (emd1d on 2-D points: TW_VALIDATION)', async () => {
    await page.goto(`${base}/console/#transport`);
    await page.getByLabel('Problem', { exact: true }).selectOption('points');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page
      .locator('fieldset', { hasText: 'Solver A' })
      .getByLabel('Solver', { exact: true })
      .selectOption('emd1d');
    await page.getByRole('button', { name: 'Solve' }).click();
    const alert = page.getByTestId('transport-error');
    await alert.waitFor({ state: 'visible', timeout: 10_000 });
    await expect(alert.locator('.error-code').textContent()).resolves.toBe('TW_VALIDATION');
    await expect(alert.textContent()).resolves.toMatch(/HTTP 400/);
    await shot('error.png');
  });

  it('lists the models with their state and the DDPM sample grid', async () => {
    await page.goto(`${base}/console/#models`);
    await page.getByTestId('models-list').locator('table').first().waitFor();
    const text = await page.getByTestId('models-list').textContent();
    for (const m of MODELS) expect(text).toContain(m);
    await expect(page.getByTestId('models-backend').textContent()).resolves.toMatch(/wasm/);
    await page.locator('img.samples').first().waitFor({ timeout: 10_000 });
    // Only the models whose manifest names a sample grid are asked for one: no 404 in the console's log.
    expect(consoleErrors.filter((e) => /404|samples\.png/.test(e))).toEqual([]);
    // A card per model, from its manifest: what made it (the command) and how well it does (validation).
    const cards = page.getByTestId('model-cards').locator('article.model-card');
    await expect(cards.count()).resolves.toBe(MODELS.length);
    const ddpm = page.getByTestId('model-card-ddpm-fashion-mnist');
    await expect(ddpm.locator('pre.command').textContent()).resolves.toMatch(/src\/train\/ddpm\.ts/);
    await expect(fact('[data-testid=model-card-ddpm-fashion-mnist]', 'task')).resolves.toBe('diffusion-eps');
    const n2s = page.getByTestId('model-card-noise2score-gaussian');
    expect(
      Number.parseFloat(await fact('[data-testid=model-card-noise2score-gaussian]', 'validationPsnr')),
    ).toBeGreaterThan(25);
    await expect(n2s.locator('.lineage').textContent()).resolves.toMatch(/Lineage/);
    // The per-image validation figures of the manifest (extra.validationPerImage), one row per Set12 image.
    await expect(n2s.getByTestId('per-image-validation').locator('tbody tr').count()).resolves.toBe(12);
    // The manifest's held-out figures (bench/heldout-manifests.ts): the report split, never tuned on.
    const heldout = n2s.getByTestId('heldout-figures');
    await expect(heldout.locator('section[data-role=report]').textContent()).resolves.toMatch(
      /psnr_sigma25_given[\d.]+.*bench\/heldout-manifests\.ts/,
    );
    await expect(page.getByTestId('train-your-own').textContent()).resolves.toMatch(
      /npm run train -- noise2score --images \.\/my-noisy --noise gaussian --out models\/my-denoiser\/1/,
    );
    await shot('models.png');
  });

  it('runs the Detect page on the shipped examples: PGD versions score above the clean images', async () => {
    await page.goto(`${base}/console/#detect`);
    await page.getByRole('button', { name: /Load Fashion-MNIST examples/ }).click();
    await page.locator('#page-detect .thumbs img').first().waitFor();
    await expect(page.locator('#page-detect .thumbs img').count()).resolves.toBe(8);
    await page.locator('#page-detect').getByRole('button', { name: 'Detect', exact: true }).click();
    const chart = page.getByTestId('detect-chart');
    const alert = page.getByTestId('detect-error');
    await Promise.race([
      chart.waitFor({ state: 'visible', timeout: 40_000 }),
      alert.waitFor({ state: 'visible', timeout: 40_000 }),
    ]);
    {
      expect(await alert.isVisible()).toBe(false);
      const rows = page.locator('[data-testid=detect-results] tbody tr');
      await expect(rows.count()).resolves.toBe(8);
      // The PGD versions score higher than the clean images on average (the detector's AUROC is far above 0.5).
      const scores = { clean: [] as number[], adversarial: [] as number[] };
      for (const row of await rows.all()) {
        const cells = await row.locator('td').allTextContents();
        scores[cells[1] as 'clean' | 'adversarial'].push(Number.parseFloat(cells[2]));
      }
      const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
      expect(mean(scores.adversarial)).toBeGreaterThan(mean(scores.clean));
      expect(await inkedPixels('[data-testid=detect-chart]')).toBeGreaterThan(300);
      // The x-axis labels are the images' whole names (they were cut to 14 characters).
      const labels = JSON.parse((await chart.getAttribute('data-labels')) ?? '[]') as string[];
      const names = await Promise.all((await rows.all()).map((r) => r.locator('td').first().textContent()));
      expect(labels).toEqual(names);
    }
    await shot('detect.png');
    expect(cspViolations).toEqual([]);
  });

  it('Denoise shows the controls of the chosen method only (MID: masks and seed, no noise level)', async () => {
    await page.goto(`${base}/console/#denoise`);
    const denoise = page.locator('#page-denoise');
    await denoise.getByLabel('Method').selectOption('mid');
    for (const label of [
      'Noise family',
      'Level',
      'Level estimator (auto)',
      'Self-ensemble (Noise2Score)',
      'Wiener stage (Gaussian)',
    ]) {
      const control = denoise.getByLabel(label, { exact: true });
      await expect(control.isVisible()).resolves.toBe(false);
      await expect(control.isDisabled()).resolves.toBe(true);
    }
    for (const label of ['Masks (MID)', 'Mask seed (MID)']) {
      const control = denoise.getByLabel(label, { exact: true });
      await expect(control.isVisible()).resolves.toBe(true);
      await expect(control.isEnabled()).resolves.toBe(true);
    }
    await denoise.getByLabel('Method').selectOption('noise2score');
    await expect(denoise.getByLabel('Noise family', { exact: true }).isVisible()).resolves.toBe(true);
    // The Wiener stage is Gaussian only: another family disables it.
    const refine = denoise.getByLabel('Wiener stage (Gaussian)', { exact: true });
    await expect(refine.isEnabled()).resolves.toBe(true);
    await denoise.getByLabel('Noise family', { exact: true }).selectOption('poisson');
    await expect(refine.isDisabled()).resolves.toBe(true);
    await denoise.getByLabel('Noise family', { exact: true }).selectOption('gaussian');
    await expect(refine.isEnabled()).resolves.toBe(true);
    await expect(denoise.getByLabel('Masks (MID)', { exact: true }).isVisible()).resolves.toBe(false);
  });

  it('Restore: no empty boxes before an image, the example comes with a mask, no Restore without one', async () => {
    await page.goto(`${base}/console/#restore`);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    const restore = page.locator('#page-restore');
    const run = restore.getByRole('button', { name: 'Restore', exact: true });
    await expect(page.getByTestId('mask-canvas').isVisible()).resolves.toBe(false);
    await expect(restore.getByLabel('observed input', { exact: true }).isVisible()).resolves.toBe(false);
    await expect(run.isDisabled()).resolves.toBe(true);
    await restore.getByRole('button', { name: 'Use a Fashion-MNIST example' }).click();
    await page.locator('[data-testid=mask-canvas][data-missing]').waitFor();
    expect(Number(await page.getByTestId('mask-canvas').getAttribute('data-missing'))).toBeGreaterThan(0);
    await expect(run.isEnabled()).resolves.toBe(true);
    // An empty mask would be refused (422 "mask marks no pixel as missing"): the button says so first.
    await restore.getByRole('button', { name: 'Clear mask' }).click();
    await expect(run.isDisabled()).resolves.toBe(true);
    await expect(page.getByTestId('restore-hint').textContent()).resolves.toMatch(/missing pixels/);
  });

  it('Transport: an error clears the previous convergence chart and names the field on screen', async () => {
    await page.goto(`${base}/console/#transport`);
    await page.getByLabel('Problem', { exact: true }).selectOption('points');
    await page.getByLabel('n (source points or bins)').fill('12');
    await page.getByLabel('m (target points or bins)').fill('12');
    await page.getByRole('button', { name: 'Generate' }).click();
    const solverA = page.locator('fieldset', { hasText: 'Solver A' });
    await solverA.getByLabel('Solver', { exact: true }).selectOption('sinkhorn');
    await solverA.getByLabel('reg (epsilon / gamma)').fill('0.05');
    await page.getByRole('button', { name: 'Solve' }).click();
    await page.getByTestId('ot-plan-0').waitFor({ timeout: 20_000 });
    await expect(page.getByTestId('ot-convergence').isVisible()).resolves.toBe(true);
    await solverA.getByLabel('reg (epsilon / gamma)').fill('-1');
    await page.getByRole('button', { name: 'Solve' }).click();
    const alert = page.getByTestId('transport-error');
    await alert.waitFor({ state: 'visible', timeout: 10_000 });
    await expect(page.getByTestId('ot-convergence').isVisible()).resolves.toBe(false);
    const message = (await alert.locator('.error-message').textContent()) ?? '';
    expect(message).toMatch(/Solver A, reg \(epsilon \/ gamma\)/);
    expect(message).not.toMatch(/body\/solver/);
  });

  it('shows the status strip (backend, workers, queue) on every page, quietly unreachable', async () => {
    await page.goto(`${base}/console/#detect`);
    await page.reload();
    const strip = page.getByTestId('status-strip');
    await page.locator('[data-testid=status-strip][data-state=ready]').waitFor({ timeout: 10_000 });
    await expect(strip.getByTestId('status-backend').textContent()).resolves.toMatch(/wasm/);
    await expect(strip.getByTestId('status-workers').textContent()).resolves.toMatch(/of 1$/);
    await expect(strip.getByTestId('status-queue').textContent()).resolves.toMatch(/^queue\d+ of \d+/);
    for (const tab of ['Denoise', 'Models']) {
      await page.getByRole('tab', { name: tab }).click();
      await expect(strip.isVisible()).resolves.toBe(true);
    }
    // The service unreachable: the strip says so, without an alert on the page.
    await page.route('**/readyz', (route) => route.abort());
    await page.reload();
    await page.locator('[data-testid=status-strip][data-state=unreachable]').waitFor({ timeout: 10_000 });
    await expect(page.locator('[role=alert]:visible').count()).resolves.toBe(0);
    await page.unroute('**/readyz');
    await page.reload();
    await page.locator('[data-testid=status-strip][data-state=ready]').waitFor({ timeout: 10_000 });
  });

  it('Denoise compares every model that applies on the same noisy image: PSNR and time each', async () => {
    await page.goto(`${base}/console/#denoise`);
    const denoise = page.locator('#page-denoise');
    await denoise.getByLabel('Method').selectOption('noise2score');
    await denoise.locator('input[type=file]').setInputFiles(path.join(EXAMPLES, 'set12-01-96.png'));
    await denoise.getByLabel('add synthetic noise first', { exact: false }).check();
    await denoise.getByLabel('Synthetic noise level').fill('25');
    await denoise.getByRole('button', { name: 'Compare methods' }).click();
    const rows = page.locator('[data-testid=denoise-compare-table] tbody tr');
    await rows.first().waitFor({ timeout: 30_000 });
    // The test's repository holds two Gaussian Noise2Score versions (v1, v7) and no MID model.
    const labels = await rows.locator('th').allTextContents();
    expect(labels).toEqual(['Noise2Score noise2score-gaussian@v1', 'Noise2Score noise2score-gaussian@v7']);
    for (const row of await rows.all()) {
      const cells = await row.locator('td').allTextContents();
      // sigma 25 noise is ~20.2 dB: each model gains on it; each has its own time.
      expect(Number.parseFloat(cells[0])).toBeGreaterThan(22);
      expect(cells[1]).toMatch(/^\d+(\.\d+)? ms$/);
      expect(cells[2]).toMatch(/^\d+(\.\d+)? ms$/);
    }
    // Side by side (the noisy input and each result) and a slider between any two.
    await expect(page.locator('[data-testid=denoise-compare] .side-by-side figure').count()).resolves.toBe(3);
    await expect(
      page.locator('[data-testid=denoise-compare-slider] input[type=range]').isVisible(),
    ).resolves.toBe(true);
    await shot('denoise-compare.png');
  });

  it("Swagger UI's Try it out on /v1/denoise offers a file field (the request body is documented)", async () => {
    await page.goto(`${base}/docs`);
    const op = page.locator('.opblock-post', { hasText: '/v1/denoise' }).first();
    await op.locator('.opblock-summary').click();
    await op.getByRole('button', { name: 'Try it out' }).click();
    // multipart/form-data is the first content type: its binary `image` field is a file input.
    const file = op.locator('input[type=file]').first();
    await file.waitFor({ timeout: 10_000 });
    // And the request it sends is answered (it was 415 without a body).
    await file.setInputFiles(path.join(EXAMPLES, 'set12-01-96.png'));
    await op.getByRole('button', { name: 'Execute' }).click();
    const status = op.locator('.live-responses-table tr.response .response-col_status').first();
    await status.waitFor({ timeout: 20_000 });
    await expect(status.textContent()).resolves.toMatch(/^\s*200/);
    await shot('swagger-denoise.png');
  });
});
