/**
 * Static checks of the Kubernetes manifests (deploy/k8s) and of Dockerfile.gpu: every manifest parses (yaml), and
 * the properties the deployment depends on hold: probes on the real health routes, a startup probe sized for model
 * loading, a grace period longer than preStop + drain, resources, non-root and read-only pods, GPUs for workers,
 * selectors and targets that point at each other, a KEDA trigger on the queue the service really uses, and a
 * ConfigMap the service's own config schema accepts. docker cannot build here, so the GPU Dockerfile is read too.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { configSchema, loadConfig } from '../../src/config.js';
import { repoRoot } from '../helpers.js';

type Doc = Record<string, any>;
const k8sDir = path.join(repoRoot, 'deploy/k8s');

function loadManifests(): { file: string; doc: Doc }[] {
  const out: { file: string; doc: Doc }[] = [];
  for (const file of readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f))) {
    for (const d of parseAllDocuments(readFileSync(path.join(k8sDir, file), 'utf8'))) {
      expect(d.errors, `${file}: ${d.errors.map((e) => e.message).join('; ')}`).toEqual([]);
      const doc = d.toJS() as Doc | null;
      if (doc) out.push({ file, doc });
    }
  }
  return out;
}

const manifests = loadManifests();
const find = (kind: string, name: string) => {
  const m = manifests.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in deploy/k8s`);
  return m.doc;
};
const configMap = find('ConfigMap', 'tweedie-config');
const api = find('Deployment', 'tweedie-api');
const worker = find('Deployment', 'tweedie-worker');
const shutdownGraceS = Number(configMap.data.SHUTDOWN_GRACE_MS) / 1000;

const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('kubernetes manifests', () => {
  it('parse, each with apiVersion, kind and name, and the kustomization lists every file', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(9);
    for (const { file, doc } of manifests) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
      if (doc.kind !== 'Kustomization') expect(doc.metadata?.name, file).toBeTruthy();
    }
    const kustomization = manifests.find((m) => m.doc.kind === 'Kustomization')?.doc as Doc;
    const listed = new Set(kustomization.resources as string[]);
    const files = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    expect([...listed].sort()).toEqual(files.sort());
  });

  it('has a ConfigMap that the service’s own config schema accepts, and only known variables', () => {
    const known = new Set(Object.keys(configSchema.shape));
    for (const key of Object.keys(configMap.data)) expect(known, key).toContain(key);
    const cfg = loadConfig({ ...configMap.data, REDIS_URL: 'redis://redis:6379' });
    expect(cfg.JOBS_BACKEND).toBe('redis');
    for (const d of [api, worker]) {
      for (const c of d.spec.template.spec.containers) {
        for (const e of c.env ?? []) expect(known, `${d.metadata.name} env ${e.name}`).toContain(e.name);
        expect(c.envFrom?.[0]?.configMapRef?.name).toBe('tweedie-config');
      }
    }
  });

  it('runs the API with probes on the health routes, a startup budget for model loading, and a drain', () => {
    const pod = api.spec.template.spec;
    const [c] = pod.containers;
    expect(c.livenessProbe.httpGet.path).toBe('/livez');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.startupProbe.httpGet.path).toBe('/readyz');
    // Model loading and warm-up: at least two minutes before the kubelet gives up.
    expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBeGreaterThanOrEqual(120);
    const routes = readFileSync(path.join(repoRoot, 'routes/health.ts'), 'utf8');
    expect(routes).toContain("'/livez'");
    expect(routes).toContain("'/readyz'");

    const preStop = c.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe('sleep');
    const preStopS = Number(preStop[1]);
    expect(preStopS).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStopS + shutdownGraceS);

    // The port the container declares is the one the image listens on and the Service targets.
    const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(new RegExp(`EXPOSE ${c.ports[0].containerPort}\\b`));
    const svc = find('Service', 'tweedie-api');
    expect(svc.spec.ports[0].targetPort).toBe(c.ports[0].name);
    expect(matches(svc.spec.selector, api.spec.template.metadata.labels)).toBe(true);
    expect(c.args.join(' ')).toContain('dist/src/server.js');
  });

  it('gives every pod resource requests and limits, non-root, a read-only root filesystem, no escalation', () => {
    for (const d of [api, worker]) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot, d.metadata.name).toBe(true);
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      for (const c of pod.containers) {
        for (const r of ['cpu', 'memory']) {
          expect(c.resources.requests[r], `${d.metadata.name} requests.${r}`).toBeDefined();
          expect(c.resources.limits[r], `${d.metadata.name} limits.${r}`).toBeDefined();
        }
        expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
        expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
        expect(c.securityContext.capabilities.drop).toContain('ALL');
        // A read-only root needs somewhere to write temporary files.
        const tmp = c.volumeMounts.find((v: Doc) => v.mountPath === '/tmp');
        expect(pod.volumes.find((v: Doc) => v.name === tmp.name).emptyDir).toBeDefined();
      }
    }
  });

  it('runs workers on GPUs with the worker entry point and a grace period longer than the job drain', () => {
    const pod = worker.spec.template.spec;
    const [c] = pod.containers;
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.image).toMatch(/gpu/);
    expect(c.args.join(' ')).toContain('dist/src/worker.js');
    expect(existsSync(path.join(repoRoot, 'src/worker.ts'))).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.scripts.worker).toContain('dist/src/worker.js');
    expect(c.env.find((e: Doc) => e.name === 'TFJS_BACKEND').value).toBe('tensorflow');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(shutdownGraceS);
    expect(pod.tolerations.some((t: Doc) => t.key === 'nvidia.com/gpu')).toBe(true);
  });

  it('scales the API with an HPA and the workers with KEDA on the BullMQ wait list of the configured queue', () => {
    const hpa = find('HorizontalPodAutoscaler', 'tweedie-api');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'tweedie-api' });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);

    const so = find('ScaledObject', 'tweedie-worker');
    expect(so.apiVersion).toMatch(/^keda\.sh\//);
    expect(so.spec.scaleTargetRef.name).toBe('tweedie-worker');
    const trigger = so.spec.triggers[0];
    expect(trigger.type).toBe('redis');
    // BullMQ keeps waiting jobs in the list bull:<queue>:wait.
    expect(trigger.metadata.listName).toBe(`bull:${configMap.data.JOBS_QUEUE_NAME}:wait`);
    expect(Number(trigger.metadata.listLength)).toBeGreaterThan(0);
    expect(find('TriggerAuthentication', trigger.authenticationRef.name)).toBeDefined();
    expect(so.spec.cooldownPeriod).toBeGreaterThan(shutdownGraceS);
  });

  it('has a PodDisruptionBudget selecting each deployment’s pods, and Redis only as an external secret', () => {
    for (const d of [api, worker]) {
      const pdb = find('PodDisruptionBudget', d.metadata.name);
      expect(pdb.apiVersion).toBe('policy/v1');
      expect(matches(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
      expect(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
      const redisUrl = d.spec.template.spec.containers[0].env.find((e: Doc) => e.name === 'REDIS_URL');
      expect(redisUrl.valueFrom.secretKeyRef.name).toBe('tweedie-redis');
    }
    // We do not ship our own Redis: no StatefulSet or redis image anywhere.
    for (const { doc } of manifests) {
      expect(doc.kind).not.toBe('StatefulSet');
      expect(JSON.stringify(doc)).not.toMatch(/"image":"[^"]*redis/);
    }
    expect(readFileSync(path.join(repoRoot, 'deploy/README.md'), 'utf8')).toMatch(/bitnami/i);
  });
});

describe('Dockerfile.gpu', () => {
  const text = readFileSync(path.join(repoRoot, 'Dockerfile.gpu'), 'utf8');
  // Instructions with continuation lines joined (comments dropped), and ARG defaults.
  const instructions = text
    .replace(/\\\n(\s*#.*\n)*/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'))
    .map((l) => {
      const [keyword, ...rest] = l.trim().split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
  const args = Object.fromEntries(
    instructions
      .filter((i) => i.keyword === 'ARG' && i.args.includes('='))
      .map((i) => i.args.split('=') as [string, string]),
  );
  const expand = (s: string) => s.replace(/\$\{?(\w+)\}?/g, (_, n) => args[n] ?? `$${n}`);
  const stages = instructions.filter((i) => i.keyword === 'FROM').map((i) => expand(i.args));
  const last = instructions.slice(instructions.map((i) => i.keyword).lastIndexOf('FROM'));

  it('runs on a CUDA 11 + cuDNN 8 base, as @tensorflow/tfjs-node-gpu 4.x needs', () => {
    const runtime = stages.at(-1) as string;
    expect(runtime).toMatch(
      /^nvidia\/cuda:11\.\d+(\.\d+)?-cudnn8-(runtime|devel)-ubuntu\d+\.\d+ AS runtime$/,
    );
  });

  it('installs the native binding at build time, matching the project’s TF.js version, and selects it', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    const tfjsMinor = /(\d+\.\d+)/.exec(pkg.dependencies['@tensorflow/tfjs'])?.[1];
    const bindingVersion = args.TFJS_NODE_GPU_VERSION;
    expect(bindingVersion.startsWith(`${tfjsMinor}.`)).toBe(true);
    const install = last.find((i) => i.keyword === 'RUN' && i.args.includes('@tensorflow/tfjs-node-gpu@'));
    expect(expand(install?.args ?? '')).toContain(`@tensorflow/tfjs-node-gpu@${bindingVersion}`);
    // The image fails to build if the binding does not load.
    expect(install?.args).toContain("require('@tensorflow/tfjs-node-gpu')");
    const env = last
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(env).toMatch(/TFJS_BACKEND=tensorflow/);
    expect(readFileSync(path.join(repoRoot, 'src/nn/backend.ts'), 'utf8')).toContain(
      '@tensorflow/tfjs-node-gpu',
    );
  });

  it('runs as a non-root user under an init, with a health check, on the service port', () => {
    const user = last.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(last.find((i) => i.keyword === 'ENTRYPOINT')?.args).toContain('tini');
    expect(last.find((i) => i.keyword === 'HEALTHCHECK')?.args).toContain('/livez');
    expect(last.find((i) => i.keyword === 'EXPOSE')?.args).toBe('8080');
    expect(last.find((i) => i.keyword === 'CMD')?.args).toContain('dist/src/server.js');
  });
});
