/**
 * The README is the front door: every `curl` example in it runs here against a real app (the repository's own
 * models), and must answer 2xx with the content it promises.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, repoRoot } from './helpers.js';

interface Example {
  line: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
}

/** Split a shell line into words, honouring single and double quotes. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

function parse(line: string): Example {
  const w = words(line);
  const ex: Example = { line, method: 'GET', url: '', headers: {} };
  const form: { name: string; file: string }[] = [];
  for (let i = 1; i < w.length; i++) {
    const a = w[i];
    if (a === '-s') continue;
    if (a === '-o') {
      i++;
      continue;
    }
    if (a === '-H') {
      const [k, ...v] = w[++i].split(':');
      ex.headers[k.trim().toLowerCase()] = v.join(':').trim();
    } else if (a === '-d') {
      ex.method = 'POST';
      ex.payload = w[++i];
    } else if (a === '--data-binary') {
      ex.method = 'POST';
      ex.payload = readFileSync(path.join(repoRoot, w[++i].replace(/^@/, '')));
    } else if (a === '-F') {
      ex.method = 'POST';
      const [name, file] = w[++i].split('=@');
      form.push({ name, file });
    } else if (a.startsWith('localhost:8080')) {
      ex.url = a.slice('localhost:8080'.length);
    } else {
      throw new Error(`README example uses an option this test does not understand: ${a} in ${line}`);
    }
  }
  if (form.length) {
    const boundary = '----readme';
    const parts = form.map((f) =>
      Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"; filename="${path.basename(f.file)}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
        ),
        readFileSync(path.join(repoRoot, f.file)),
        Buffer.from('\r\n'),
      ]),
    );
    ex.payload = Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
    ex.headers['content-type'] = `multipart/form-data; boundary=${boundary}`;
  }
  return ex;
}

const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const examples = readme
  .split('\n')
  .filter((l) => l.startsWith('curl -s '))
  .map(parse);

describe('README examples', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ MODELS_DIR: path.join(repoRoot, 'models'), WORKERS: 1 });
    await app.models.settled;
  }, 300_000);
  afterAll(async () => {
    await app.close();
  });

  it('has examples for every area', () => {
    expect(examples.length).toBeGreaterThanOrEqual(12);
    for (const prefix of ['/readyz', '/v1/ot/plan', '/v1/denoise', '/v1/restore', '/v1/jobs', '/graphql']) {
      expect(examples.some((e) => e.url.startsWith(prefix))).toBe(true);
    }
  });

  it.each(examples.map((e) => [e.line.slice(0, 100), e] as const))('%s', async (_name, ex) => {
    const res = await app.inject({
      method: ex.method as 'GET' | 'POST',
      url: ex.url,
      headers: ex.headers,
      payload: ex.payload,
    });
    expect(res.statusCode, res.body.slice(0, 500)).toBeGreaterThanOrEqual(200);
    expect(res.statusCode, res.body.slice(0, 500)).toBeLessThan(300);
    const type = String(res.headers['content-type']);
    if (type.startsWith('application/json')) {
      const body = res.json();
      expect(body.error).toBeUndefined();
      if (ex.url === '/graphql') expect(body.errors).toBeUndefined();
      // An OT example with epsilon scaling converges, with nothing to warn about (it answered max_iter_reached,
      // and a warning suggesting epsilon scaling).
      if (ex.url.startsWith('/v1/ot/') && ex.line.includes('"epsilonScaling":true')) {
        expect(body.status ?? 'converged', ex.line).not.toBe('max_iter_reached');
        expect(body.warnings ?? [], ex.line).toEqual([]);
      }
    }
    if (/^\/v1\/(denoise|restore)/.test(ex.url) && !ex.url.includes('output=json'))
      expect(type).toBe('image/png');
  });
});
