/**
 * Static checks of the Dockerfile (docker cannot build on the test machines): a small parser reads instructions and
 * stages, and the tests assert what the image must be: multi-stage, production dependencies only, non-root, an init
 * as PID 1, a working health check, models inside, the port the service listens on.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';

interface Instruction {
  keyword: string;
  /** Arguments after the keyword and its --flags, continuation lines joined. */
  args: string;
  /** The exec (JSON array) form, when the arguments are one. */
  exec?: string[];
  flags: Record<string, string>;
  line: number;
}

interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

interface Dockerfile {
  directives: Record<string, string>;
  globalArgs: Record<string, string>;
  stages: Stage[];
}

const FLAGGED = new Set(['FROM', 'RUN', 'COPY', 'ADD', 'HEALTHCHECK']);

/**
 * Dockerfile syntax as far as this project uses it: parser directives, comments (also between continuation lines,
 * which Docker drops), line continuations, --flags, exec form, ARG substitution in FROM. No heredocs.
 */
function parseDockerfile(text: string): Dockerfile {
  const lines = text.split(/\r?\n/);
  const directives: Record<string, string> = {};
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(lines[i]);
    if (!m) break;
    directives[m[1].toLowerCase()] = m[2];
  }
  const escapeChar = directives.escape ?? '\\';

  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  for (; i < lines.length; i++) {
    const raw = lines[i];
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (pending === '') startLine = i + 1;
    const continues = raw.trimEnd().endsWith(escapeChar);
    pending += continues ? raw.trimEnd().slice(0, -escapeChar.length) : raw;
    if (continues) continue;
    instructions.push(toInstruction(pending.trim(), startLine));
    pending = '';
  }
  if (pending !== '') throw new Error(`line ${startLine}: the last instruction ends with a continuation`);

  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [image, as, name] = ins.args.split(/\s+/);
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_, v: string) => globalArgs[v] ?? '');
      stages.push({ image: resolved, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`line ${ins.line}: only ARG may come before the first FROM`);
      const [key, value = ''] = ins.args.split('=');
      globalArgs[key.trim()] = value.trim();
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { directives, globalArgs, stages };
}

function toInstruction(source: string, line: number): Instruction {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(source)!;
  const keyword = m[1].toUpperCase();
  let args = m[2];
  const flags: Record<string, string> = {};
  if (FLAGGED.has(keyword)) {
    let f: RegExpExecArray | null;
    while ((f = /^--([\w-]+)(?:=(\S*))?\s*/.exec(args))) {
      flags[f[1]] = f[2] ?? 'true';
      args = args.slice(f[0].length);
    }
  }
  let exec: string[] | undefined;
  const jsonPart = keyword === 'HEALTHCHECK' ? args.replace(/^CMD\s+/i, '') : args;
  if (jsonPart.startsWith('[')) {
    try {
      const parsed = JSON.parse(jsonPart);
      if (Array.isArray(parsed) && parsed.every((s) => typeof s === 'string')) exec = parsed;
    } catch {
      // Shell form that happens to start with '[': Docker runs it through the shell too.
    }
  }
  return { keyword, args: args.trim(), exec, flags, line };
}

/** ENV accepts `K=V K2=V2` (and the legacy `K V`). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions.filter((x) => x.keyword === 'ENV')) {
    const pairs = ins.args.match(/(\w+)=("[^"]*"|\S+)/g);
    if (pairs) {
      for (const p of pairs) {
        const [k, ...v] = p.split('=');
        env[k] = v.join('=').replace(/^"|"$/g, '');
      }
    } else {
      const [k, ...v] = ins.args.split(/\s+/);
      env[k] = v.join(' ');
    }
  }
  return env;
}

/** .dockerignore matching (Go filepath.Match per path, `**` for any depth, `!` re-includes, last match wins). */
function isIgnored(path: string, patterns: string[]): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const source = pattern
      .split('/')
      .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')))
      .join('/')
      .replace(/\.\*\//g, '(?:.*/)?');
    // A pattern naming a folder ignores everything below it.
    if (new RegExp(`^${source}(?:/.*)?$`).test(path)) ignored = !negate;
  }
  return ignored;
}

const root = new URL('../../', import.meta.url);
const dockerfile = parseDockerfile(readFileSync(new URL('Dockerfile', root), 'utf8'));
const dockerignore = readFileSync(new URL('.dockerignore', root), 'utf8')
  .split(/\r?\n/)
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const runtime = dockerfile.stages[dockerfile.stages.length - 1];
const builder = dockerfile.stages[0];
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

describe('Dockerfile parser', () => {
  it('joins continuations, drops comments, reads flags, exec form and stages', () => {
    const parsed = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        'ARG BASE=node:20',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile ARG syntax, not a template
        'FROM ${BASE} AS one',
        'RUN --mount=type=cache,target=/x echo a \\',
        '  # a comment inside the continuation',
        '  && echo b',
        'from scratch',
        'COPY --from=one /a /b',
        'CMD ["x", "y"]',
      ].join('\n'),
    );
    expect(parsed.directives).toEqual({ syntax: 'docker/dockerfile:1' });
    expect(parsed.stages.map((s) => [s.image, s.name])).toEqual([
      ['node:20', 'one'],
      ['scratch', undefined],
    ]);
    const run = parsed.stages[0].instructions[0];
    expect(run.flags).toEqual({ mount: 'type=cache,target=/x' });
    expect(run.args).toBe('echo a   && echo b');
    expect(parsed.stages[1].instructions[0].flags.from).toBe('one');
    expect(parsed.stages[1].instructions[1].exec).toEqual(['x', 'y']);
  });

  it('matches .dockerignore patterns like Docker', () => {
    expect(isIgnored('node_modules/x/y.js', ['node_modules'])).toBe(true);
    expect(isIgnored('web/node_modules/a', ['**/node_modules'])).toBe(true);
    expect(isIgnored('web/dist/index.html', ['dist'])).toBe(false);
    expect(isIgnored('a.log', ['*.log', '!a.log'])).toBe(false);
  });
});

describe('Dockerfile', () => {
  it('has a build stage and a runtime stage on Node 22 LTS (bookworm slim at runtime)', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of dockerfile.stages) expect(stage.image).toMatch(/^node:22\b/);
    expect(runtime.image).toBe('node:22-bookworm-slim');
    const buildRuns = of(builder, 'RUN').map((r) => r.args);
    expect(buildRuns.some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r))).toBe(true);
    expect(buildRuns.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
  });

  it('installs production dependencies only in the runtime stage and copies the build output', () => {
    const runs = of(runtime, 'RUN').map((r) => r.args);
    expect(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(runs.some((r) => /npm (run build|install\b(?!.*--omit))/.test(r))).toBe(false);
    const copies = of(runtime, 'COPY');
    const fromBuild = copies.filter((c) => c.flags.from === builder.name).map((c) => c.args.split(/\s+/)[0]);
    expect(fromBuild).toEqual(expect.arrayContaining(['/app/dist', '/app/models', '/app/schema.graphql']));
    expect(fromBuild.some((src) => src.endsWith('web/dist'))).toBe(true);
    // Files copied from the build context must exist in the repository.
    for (const c of [...copies, ...of(builder, 'COPY')].filter((x) => !x.flags.from)) {
      for (const src of c.args.split(/\s+/).slice(0, -1))
        expect(existsSync(new URL(src, root)), src).toBe(true);
    }
  });

  it('runs as a non-root user under tini, with the environment of the embedded default', () => {
    const users = of(runtime, 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1].args.split(':')[0];
    expect(['root', '0', '']).not.toContain(user);
    const entrypoint = of(runtime, 'ENTRYPOINT').at(-1)?.exec;
    expect(entrypoint?.[0]).toMatch(/\/(tini|dumb-init)$/);
    expect(of(runtime, 'RUN').some((r) => /apt-get install[^&]*\btini\b/.test(r.args))).toBe(true);
    const env = envOf(runtime);
    expect(env).toMatchObject({ NODE_ENV: 'production', TFJS_BACKEND: 'wasm', HOST: '0.0.0.0' });
    const cmd = of(runtime, 'CMD').at(-1)?.exec;
    expect(cmd).toEqual(['node', 'dist/src/server.js']);
    // dist/src/server.js is what `npm run build` makes of src/server.ts.
    const tsconfig = JSON.parse(readFileSync(new URL('tsconfig.json', root), 'utf8'));
    expect(tsconfig.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: '.' });
    expect(existsSync(new URL('src/server.ts', root))).toBe(true);
  });

  it('runs the Node the package declares: 22 in the image, and the code still runs on 20', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
    const range = pkg.engines.node as string;
    // Node 20 left LTS in April 2026: the image moves to 22, CI and the test machines still run 20.
    expect(range.split('||').map((r) => r.trim())).toEqual(['^20.9.0', '>=22']);
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(20);
    const gpu = parseDockerfile(readFileSync(new URL('Dockerfile.gpu', root), 'utf8'));
    expect(gpu.globalArgs.NODE_IMAGE).toMatch(/^node:22-/);
  });

  it('serves the models bundled in the image when no volume is mounted (MODELS_DIR is absolute)', () => {
    const env = envOf(runtime);
    expect(env.MODELS_DIR).toBe('/app/models');
    const workdir = of(runtime, 'WORKDIR').at(-1)?.args;
    const models = of(runtime, 'COPY').find(
      (c) => c.flags.from === builder.name && c.args.startsWith('/app/models'),
    );
    expect(path.posix.resolve(workdir ?? '/', models?.args.split(/\s+/)[1] ?? '')).toBe(env.MODELS_DIR);
  });

  it('exposes the port the service listens on by default', () => {
    const exposed = of(runtime, 'EXPOSE').flatMap((e) =>
      e.args.split(/\s+/).map((p) => Number.parseInt(p, 10)),
    );
    const env = envOf(runtime);
    expect(exposed).toContain(Number(env.PORT));
    const config = readFileSync(new URL('src/config.ts', root), 'utf8');
    const configDefault = /\bPORT:[^\n]*\.default\((\d+)\)/.exec(config)?.[1];
    expect(configDefault).toBeDefined();
    expect(exposed).toContain(Number(configDefault));
  });

  it('has a HEALTHCHECK that asks /livez with node (no curl in slim), and it works', async () => {
    const checks = of(runtime, 'HEALTHCHECK');
    expect(checks).toHaveLength(1);
    const [program, flag, code] = checks[0].exec ?? [];
    expect([program, flag]).toEqual(['node', '-e']);
    expect(code).toContain('/livez');
    expect(() => new Script(code)).not.toThrow();

    // Run it for real against a stand-in server: healthy -> exit 0, failing -> exit 1.
    let status = 200;
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const runCheck = () =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, ['-e', code], { env: { ...process.env, PORT: String(port) } });
        child.on('exit', resolve);
      });
    try {
      expect(await runCheck()).toBe(0);
      status = 503;
      expect(await runCheck()).toBe(1);
      expect(paths).toEqual(['/livez', '/livez']);
    } finally {
      server.close();
    }
  });

  it('keeps bulky and private files out of the build context, but not what the build needs', () => {
    for (const p of [
      'node_modules/x',
      'dist/src/server.js',
      '.git/HEAD',
      'checkpoints/a.ckpt',
      'test/screenshots/a.png',
    ]) {
      expect(isIgnored(p, dockerignore), p).toBe(true);
    }
    for (const p of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'src/server.ts',
      'routes/health.ts',
      'schema.graphql',
      'models/dncnn/1/model.json',
      'web/dist/index.html',
    ]) {
      expect(isIgnored(p, dockerignore), p).toBe(false);
    }
  });
});
