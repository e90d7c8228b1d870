/**
 * Static checks of the Kubernetes manifests (deploy/k8s) and of Dockerfile.gpu: every manifest parses (yaml), the
 * kustomize render (emulated: the resources list, the namespace and labels applied) validates against the
 * Kubernetes API schemas (kubernetes-models, and @kubernetes-models/keda for KEDA's CRDs), and the properties the
 * deployment depends on hold: its own Namespace, probes on the real health routes (API and workers), a startup
 * probe sized for model loading, grace periods longer than preStop + drain, resources, heap caps that fit the
 * memory limits, non-root and read-only pods, GPUs for workers, selectors and targets that point at each other, a
 * KEDA trigger on the waiting and the running jobs of the queue the service really uses, autoscalers and
 * disruption budgets that agree, models on a shared volume, and a ConfigMap the service's own config schema
 * accepts. docker cannot build here, so the GPU Dockerfile is read too.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Pod, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { configSchema, loadConfig, resolvedConcurrentTasks, resolvedWorkerHeapMb } from '../../src/config.js';
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

/** The schema of each kind the manifests use: validate() throws on a field of the wrong type or a missing one. */
const schemas: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
};
const CLUSTER_SCOPED = new Set(['Namespace']);

/**
 * Fields the schema does not know. The Kubernetes schemas allow unknown fields and the API server (kubectl's default
 * strict field validation) refuses them, so a misspelt `livenesProbe` would pass validate() and fail the deploy.
 * The generated validator reads every property its schema declares (maps and free-form objects are iterated): so
 * the data goes through it behind a proxy that records each read, and a key never read is one the schema lacks.
 */
function unknownFields(Model: new (data: any) => { validate(): void }, doc: Doc): string[] {
  const read = new Set<string>();
  const track = (value: unknown, at: string): unknown =>
    value && typeof value === 'object'
      ? new Proxy(value, {
          get(target, key, receiver) {
            const child = Reflect.get(target, key, receiver);
            if (typeof key !== 'string') return child;
            read.add(`${at}/${key}`);
            return track(child, `${at}/${key}`);
          },
        })
      : value;
  const data = JSON.parse(JSON.stringify(doc));
  Model.prototype.validate.call(track(data, ''));
  const unknown: string[] = [];
  const walk = (value: unknown, at: string) => {
    if (!value || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value)) {
      if (read.has(`${at}/${key}`)) walk(child, `${at}/${key}`);
      else unknown.push(`${at}/${key}`);
    }
  };
  walk(data, '');
  return unknown;
}

function validate(doc: Doc): string | null {
  const Model = schemas[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return `no schema for ${doc.apiVersion} ${doc.kind}: add it to the map in this test`;
  try {
    new Model(doc).validate();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  const unknown = unknownFields(Model, doc);
  return unknown.length ? `unknown fields: ${unknown.join(', ')}` : null;
}

/** What `kubectl kustomize deploy/k8s` renders, for the fields this kustomization uses. */
function kustomize(): Doc[] {
  const k = parseAllDocuments(readFileSync(path.join(k8sDir, 'kustomization.yaml'), 'utf8'))[0].toJS() as Doc;
  const extraLabels = Object.assign({}, ...((k.labels ?? []) as Doc[]).map((l) => l.pairs));
  return (k.resources as string[]).flatMap((file) =>
    parseAllDocuments(readFileSync(path.join(k8sDir, file), 'utf8'))
      .map((d) => d.toJS() as Doc | null)
      .filter((d): d is Doc => d !== null)
      .map((d) => ({
        ...d,
        metadata: {
          ...d.metadata,
          ...(CLUSTER_SCOPED.has(d.kind) ? {} : { namespace: k.namespace }),
          labels: { ...d.metadata?.labels, ...extraLabels },
        },
      })),
  );
}

/** A Kubernetes memory quantity (2Gi, 512Mi, 1G) in bytes. */
function bytesOf(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (!m) throw new Error(`unsupported quantity ${quantity}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1);
}

const manifests = loadManifests();
const find = (kind: string, name: string | undefined) => {
  const m = manifests.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in deploy/k8s`);
  return m.doc;
};
const configMap = find('ConfigMap', 'tweedie-config');
const api = find('Deployment', 'tweedie-api');
const worker = find('Deployment', 'tweedie-worker');
const shutdownGraceS = Number(configMap.data.SHUTDOWN_GRACE_MS) / 1000;
const envOf = (d: Doc): Record<string, string> =>
  Object.fromEntries(
    (d.spec.template.spec.containers[0].env as Doc[])
      .filter((e) => 'value' in e)
      .map((e) => [e.name, e.value]),
  );
/** The environment a container of the deployment runs with: the ConfigMap, then its own env. */
const runEnv = (d: Doc) => ({ ...configMap.data, ...envOf(d) }) as Record<string, string>;
const knownVariables = new Set(Object.keys(configSchema.shape));
const workerSetting = (name: 'WORKER_DRAIN_MS' | 'WORKER_HEALTH_PORT') =>
  Number((loadConfig(runEnv(worker)) as Record<string, unknown>)[name]);

const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('kubernetes manifests', () => {
  it('parse, each with apiVersion, kind and name, and the kustomization lists every file', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(11);
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
    const known = knownVariables;
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

  it('gives init containers resources, a read-only root and no escalation too', () => {
    for (const d of [api, worker]) {
      for (const c of d.spec.template.spec.initContainers ?? []) {
        expect(c.resources.limits.memory, `${d.metadata.name} ${c.name}`).toBeDefined();
        expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
        expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
        expect(c.securityContext.capabilities.drop).toContain('ALL');
      }
    }
  });

  it('runs workers on GPUs with the worker entry point, health probes and metrics on the health port', () => {
    const pod = worker.spec.template.spec;
    const [c] = pod.containers;
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.image).toMatch(/gpu/);
    expect(c.args.join(' ')).toContain('dist/src/worker.js');
    expect(existsSync(path.join(repoRoot, 'src/worker.ts'))).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.scripts.worker).toContain('dist/src/worker.js');
    // WebGPU on the node's GPU (tfjs-node-gpu first when the image has it), batching sized for one GPU.
    expect(['auto', 'webgpu']).toContain(c.env.find((e: Doc) => e.name === 'TFJS_BACKEND').value);
    expect(loadConfig(runEnv(worker)).BATCH_MAX_SIZE).toBeGreaterThan(1);
    expect(pod.tolerations.some((t: Doc) => t.key === 'nvidia.com/gpu')).toBe(true);

    // The worker serves /livez, /readyz and /metrics on WORKER_HEALTH_PORT: probes and scraping go there.
    const healthPort = workerSetting('WORKER_HEALTH_PORT');
    const port = c.ports.find((p: Doc) => p.containerPort === healthPort);
    expect(port, `a container port ${healthPort}`).toBeDefined();
    expect(c.livenessProbe.httpGet).toEqual({ path: '/livez', port: port.name });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: port.name });
    expect(c.startupProbe.httpGet).toEqual({ path: '/readyz', port: port.name });
    expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBeGreaterThanOrEqual(120);
    expect(worker.spec.template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(healthPort),
      'prometheus.io/path': '/metrics',
    });
  });

  it('lets a worker drain its running jobs (WORKER_DRAIN_MS) before the kubelet kills it', () => {
    const pod = worker.spec.template.spec;
    const drainS = workerSetting('WORKER_DRAIN_MS') / 1000;
    expect(drainS).toBeGreaterThan(0);
    // Drain, then 30 s to put the unfinished jobs back in the queue and close (deploy/README.md).
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(drainS + 30);
    // A rollout never leaves the queue without a consumer.
    expect(worker.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it('caps every compute worker’s heap so that all of them together fit in the pod’s memory limit', () => {
    for (const d of [api, worker]) {
      const c = d.spec.template.spec.containers[0];
      const limitBytes = bytesOf(c.resources.limits.memory);
      const cfg = loadConfig(runEnv(d));
      const workers = Number(runEnv(d).WORKERS);
      expect(workers, `${d.metadata.name}: WORKERS is set explicitly`).toBeGreaterThan(0);
      // What the pod computes at start from its cgroup limit (or an explicit WORKER_MAX_HEAP_MB).
      const heapMb = resolvedWorkerHeapMb(cfg, limitBytes) as number;
      expect(heapMb, d.metadata.name).toBeDefined();
      const reserveMb = cfg.WORKER_MAX_HEAP_MB === undefined ? cfg.WORKER_HEAP_RESERVE_MB : 256;
      expect(workers * heapMb + reserveMb, d.metadata.name).toBeLessThanOrEqual(limitBytes / 2 ** 20);
      // The reserve holds what lives off the workers' heaps: the decoded images in flight (their budget) and the
      // main thread with native memory (measured: 300 to 380 MiB RSS for a process with 2 idle workers).
      const mainThreadMb = 384;
      expect(cfg.IMAGE_MEMORY_BUDGET_BYTES / 2 ** 20 + mainThreadMb, d.metadata.name).toBeLessThanOrEqual(
        reserveMb,
      );
      // ...and the budget still admits one image of the largest size allowed (RGBA, float32), or it would be 413.
      expect(cfg.IMAGE_MEMORY_BUDGET_BYTES).toBeGreaterThanOrEqual(cfg.MAX_IMAGE_PIXELS * 4 * 4);
      // Enough to load and run the models.
      expect(heapMb, d.metadata.name).toBeGreaterThanOrEqual(512);
      // The request leaves room for the caps too: a pod is not scheduled where it cannot grow to them.
      expect(bytesOf(c.resources.requests.memory)).toBeLessThanOrEqual(limitBytes);
    }
  });

  it('scales the API with an HPA and the workers with KEDA on the waiting and the running jobs of the queue', () => {
    const hpa = find('HorizontalPodAutoscaler', 'tweedie-api');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'tweedie-api' });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);

    const so = find('ScaledObject', 'tweedie-worker');
    expect(so.apiVersion).toMatch(/^keda\.sh\//);
    expect(so.spec.scaleTargetRef.name).toBe('tweedie-worker');
    // BullMQ keeps waiting jobs in the list bull:<queue>:wait and running ones in bull:<queue>:active
    // (test/deploy/keda-lists.test.ts shows it on a real Redis).
    const byList = new Map<string, Doc>(so.spec.triggers.map((t: Doc) => [t.metadata.listName, t]));
    const queue = configMap.data.JOBS_QUEUE_NAME;
    const waiting = byList.get(`bull:${queue}:wait`) as Doc;
    const running = byList.get(`bull:${queue}:active`) as Doc;
    for (const t of [waiting, running]) {
      expect(t?.type).toBe('redis');
      expect(Number(t.metadata.listLength)).toBeGreaterThan(0);
      // Any job, waiting or running, keeps at least one worker: never scaled to zero under a running job.
      expect(Number(t.metadata.activationListLength ?? 0)).toBe(0);
      expect(find('TriggerAuthentication', t.authenticationRef.name)).toBeDefined();
    }
    // One worker per `concurrency` running jobs: the count never drops below what the running jobs occupy.
    const cfg = loadConfig(runEnv(worker));
    const concurrency = cfg.JOBS_CONCURRENCY > 0 ? cfg.JOBS_CONCURRENCY : Number(runEnv(worker).WORKERS);
    expect(Number(running.metadata.listLength)).toBe(concurrency);
    expect(so.spec.cooldownPeriod).toBeGreaterThan(shutdownGraceS);
  });

  it('leaves replica counts to the autoscalers, and disruption budgets that let a node drain proceed', () => {
    const hpa = find('HorizontalPodAutoscaler', 'tweedie-api');
    const so = find('ScaledObject', 'tweedie-worker');
    // A fixed `replicas` would be reset by every `kubectl apply`, fighting the autoscaler.
    expect(api.spec.replicas).toBeUndefined();
    expect(worker.spec.replicas).toBeUndefined();
    // The API keeps serving through a voluntary disruption, and one pod can always be evicted.
    const apiPdb = find('PodDisruptionBudget', 'tweedie-api');
    expect(apiPdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(apiPdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
    expect(api.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    // Workers may scale to zero: a minAvailable would block every drain then; at most one drains at a time.
    const workerPdb = find('PodDisruptionBudget', 'tweedie-worker');
    expect(workerPdb.spec.minAvailable).toBeUndefined();
    expect(workerPdb.spec.maxUnavailable).toBe(1);
    // Pods stuck unready (Redis down, models missing) never hold up a node drain.
    for (const pdb of [apiPdb, workerPdb]) expect(pdb.spec.unhealthyPodEvictionPolicy).toBe('AlwaysAllow');
    expect(so.spec.minReplicaCount).toBe(0);
    expect(so.spec.maxReplicaCount).toBeGreaterThan(so.spec.minReplicaCount);
    // Scale-down one worker at a time, slowly: fewer drains cut short.
    const policies = so.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies as Doc[];
    expect(policies).toEqual([expect.objectContaining({ type: 'Pods', value: 1 })]);
  });

  it('reads models from a shared volume, seeded from the models bundled in the image', () => {
    const modelsDir = configMap.data.MODELS_DIR;
    expect(path.isAbsolute(modelsDir)).toBe(true);
    const image = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    const bundled = /MODELS_DIR=(\S+)/.exec(image)?.[1] as string;
    expect(bundled).toBe('/app/models');
    expect(image).toMatch(/COPY --from=build \/app\/models \.\/models/);
    expect(image).toMatch(/WORKDIR \/app/);
    for (const d of [api, worker]) {
      const pod = d.spec.template.spec;
      const mount = pod.containers[0].volumeMounts.find((m: Doc) => m.mountPath === modelsDir);
      expect(mount, `${d.metadata.name} mounts ${modelsDir}`).toBeDefined();
      expect(mount.readOnly).toBe(true);
      const volume = pod.volumes.find((v: Doc) => v.name === mount.name);
      expect(find('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName)).toBeDefined();
      const seed = pod.initContainers.find((c: Doc) => c.name === 'seed-models');
      expect(seed.image).toBe(pod.containers[0].image);
      expect(seed.command).toEqual(['cp', '-Rn', `${bundled}/.`, `${modelsDir}/`]);
      expect(seed.volumeMounts).toEqual([{ name: mount.name, mountPath: modelsDir }]);
    }
    const pvc = find('PersistentVolumeClaim', 'tweedie-models');
    expect(pvc.spec.accessModes).toContain('ReadWriteMany');
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

  it('creates its own namespace, and the Redis install line creates it when it comes first', () => {
    const k = find('Kustomization', undefined);
    const ns = manifests.find((m) => m.doc.kind === 'Namespace')?.doc;
    expect(ns?.metadata.name).toBe(k.namespace);
    expect((k.resources as string[])[0]).toBe(manifests.find((m) => m.doc.kind === 'Namespace')?.file);
    const readme = readFileSync(path.join(repoRoot, 'deploy/README.md'), 'utf8');
    const helm = readme.replace(/\\\n\s*/g, ' ').match(/^helm install redis .*$/m)?.[0] as string;
    expect(helm).toContain(`-n ${k.namespace}`);
    expect(helm).toContain('--create-namespace');
  });
});

describe('kubernetes manifests against the Kubernetes API schemas', () => {
  const rendered = kustomize();

  it('renders every resource of the kustomization into the namespace, each valid for its API', () => {
    expect(rendered.map((d) => d.kind).sort()).toEqual(
      manifests
        .map((m) => m.doc.kind)
        .filter((kind) => kind !== 'Kustomization')
        .sort(),
    );
    for (const doc of rendered) {
      expect(validate(doc), `${doc.kind} ${doc.metadata.name}`).toBeNull();
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace).toBe('tweedie');
      expect(doc.metadata.labels['app.kubernetes.io/part-of']).toBe('tweedie');
    }
  });

  // kubectl kustomize is the renderer itself: where it is installed, the emulation above must agree with it.
  const kubectl = spawnSync('kubectl', ['kustomize', k8sDir], { encoding: 'utf8', timeout: 60_000 });
  it.skipIf(kubectl.status !== 0)(
    'matches what `kubectl kustomize` renders, where kubectl is installed',
    () => {
      const key = (d: Doc) => `${d.kind}/${d.metadata.name}`;
      const byKey = (docs: Doc[]) => Object.fromEntries(docs.map((d) => [key(d), d]));
      const real = parseAllDocuments(kubectl.stdout).map((d) => d.toJS() as Doc);
      expect(byKey(rendered)).toEqual(byKey(real));
    },
  );

  it('validates the tools applied by hand (deploy/tools) too', () => {
    const dir = path.join(repoRoot, 'deploy/tools');
    for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
      for (const d of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
        const doc = d.toJS() as Doc;
        expect(validate(doc), file).toBeNull();
        // They mount the same claim as the service.
        const claims = (doc.spec.volumes ?? []).map((v: Doc) => v.persistentVolumeClaim?.claimName);
        for (const claim of claims.filter(Boolean))
          expect(find('PersistentVolumeClaim', claim)).toBeDefined();
      }
    }
  });

  it('would catch a broken manifest: a wrong type, a missing field, a KEDA trigger without a type, a typo', () => {
    const broken = structuredClone(api);
    broken.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    expect(validate(broken)).toMatch(/containerPort must be integer/);
    const noSelector = structuredClone(api);
    delete noSelector.spec.selector;
    expect(validate(noSelector)).toMatch(/selector/);
    const so = structuredClone(find('ScaledObject', 'tweedie-worker'));
    delete so.spec.triggers[0].type;
    expect(validate(so)).toMatch(/type/);
    expect(validate({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' } })).toMatch(/no schema/);
    // Unknown fields, which the API server refuses (strict field validation): a typo, a field at the wrong level.
    const typo = structuredClone(worker);
    typo.spec.template.spec.containers[0].livenesProbe = typo.spec.template.spec.containers[0].livenessProbe;
    expect(validate(typo)).toBe('unknown fields: /spec/template/spec/containers/0/livenesProbe');
    const misplaced = structuredClone(find('ScaledObject', 'tweedie-worker'));
    misplaced.spec.triggers[0].listName = 'bull:x:wait';
    expect(validate(misplaced)).toBe('unknown fields: /spec/triggers/0/listName');
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

  const env = () =>
    last
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');

  it('runs TF.js on WebGPU: the Vulkan loader in the image, the driver with its graphics (Vulkan) capability', () => {
    const runtime = last.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runtime.some((r) => /apt-get install[^&]*\blibvulkan1\b/.test(r))).toBe(true);
    const caps = /NVIDIA_DRIVER_CAPABILITIES=(\S+)/.exec(env())?.[1].split(',') ?? [];
    expect(caps).toEqual(expect.arrayContaining(['compute', 'utility', 'graphics']));
    expect(env()).toMatch(/NVIDIA_VISIBLE_DEVICES=all/);
    // auto: the GPU's adapter, never a software one (wasm instead); webgpu would also take lavapipe.
    expect(env()).toMatch(/TFJS_BACKEND=auto\b/);
    expect(Number(/BATCH_MAX_SIZE=(\d+)/.exec(env())?.[1])).toBeGreaterThan(1);
    // Dawn comes with the production dependencies (its binary inside the package), and the build checks it.
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.dependencies.webgpu).toBeDefined();
    expect(pkg.dependencies['@tensorflow/tfjs-backend-webgpu']).toBeDefined();
    expect(
      runtime.some((r) => r.includes('npm ci --omit=dev') && r.includes('webgpu/dist/linux-x64/dawn.node')),
    ).toBe(true);
    // No CUDA base unless the optional binding is asked for.
    expect(stages.at(-1)).not.toMatch(/cuda/);
  });

  it('keeps @tensorflow/tfjs-node-gpu optional: installed (and required to load) only when its version is given', () => {
    expect(args.TFJS_NODE_GPU_VERSION).toBe('');
    const install = last.find((i) => i.keyword === 'RUN' && i.args.includes('@tensorflow/tfjs-node-gpu@'));
    expect(install?.args).toMatch(/if \[ -n "\$\{TFJS_NODE_GPU_VERSION\}" \]; then/);
    expect(install?.args).toContain("require('@tensorflow/tfjs-node-gpu')");
    // The documented build line names a binding of the project's TF.js minor version.
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    const tfjsMinor = /(\d+\.\d+)/.exec(pkg.dependencies['@tensorflow/tfjs'])?.[1];
    const documented = /--build-arg TFJS_NODE_GPU_VERSION=(\d+\.\d+)\.\d+/.exec(text)?.[1];
    expect(documented).toBe(tfjsMinor);
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

describe('GPU variant (deploy/k8s-gpu)', () => {
  const gpuDir = path.join(repoRoot, 'deploy/k8s-gpu');
  const k = parseAllDocuments(readFileSync(path.join(gpuDir, 'kustomization.yaml'), 'utf8'))[0].toJS() as Doc;
  /** A strategic merge patch as kustomize applies it, for the fields ours uses: maps merge, named lists by name. */
  const merge = (base: any, patch: any): any => {
    if (Array.isArray(base) && Array.isArray(patch)) {
      if (!patch.every((p) => p && typeof p === 'object' && 'name' in p)) return patch;
      // The patch's items (merged with the base's of the same name) in its order, then the base's others.
      const merged = patch.map((p) => {
        const b = base.find((x) => x.name === p.name);
        return b ? merge(b, p) : p;
      });
      return [...merged, ...base.filter((b) => !patch.some((p) => p.name === b.name))];
    }
    if (base && patch && typeof base === 'object' && typeof patch === 'object' && !Array.isArray(patch)) {
      const out = { ...base };
      for (const [key, value] of Object.entries(patch))
        out[key] = key in base ? merge(base[key], value) : value;
      return out;
    }
    return patch;
  };
  const patches = (k.patches as { path: string }[]).map(
    (p) => parseAllDocuments(readFileSync(path.join(gpuDir, p.path), 'utf8'))[0].toJS() as Doc,
  );
  const rendered = kustomize().map((doc) => {
    const patch = patches.find((p) => p.kind === doc.kind && p.metadata.name === doc.metadata.name);
    return patch ? merge(doc, { ...patch, metadata: { name: doc.metadata.name } }) : doc;
  });
  const gpuApi = rendered.find((d) => d.kind === 'Deployment' && d.metadata.name === 'tweedie-api') as Doc;

  it('is the base with the API on one GPU: GPU image, nvidia.com/gpu 1, the taint tolerated, valid', () => {
    expect(k.resources).toEqual(['../k8s']);
    for (const doc of rendered) expect(validate(doc), `${doc.kind} ${doc.metadata.name}`).toBeNull();
    const pod = gpuApi.spec.template.spec;
    const [c] = pod.containers;
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.resources.requests['nvidia.com/gpu']).toBe(1);
    for (const x of [...pod.initContainers, ...pod.containers]) expect(x.image).toMatch(/tweedie-gpu/);
    expect(pod.tolerations.some((t: Doc) => t.key === 'nvidia.com/gpu' && t.effect === 'NoSchedule')).toBe(
      true,
    );
    expect(pod.nodeSelector['nvidia.com/gpu.present']).toBe('true');
    // Everything else of the base API is kept (probes, drain, security).
    expect(c.readinessProbe).toEqual(api.spec.template.spec.containers[0].readinessProbe);
    expect(c.securityContext).toEqual(api.spec.template.spec.containers[0].securityContext);
  });

  it('sizes workers, batching and GPU memory for one GPU, with variables the config schema accepts', () => {
    const c = gpuApi.spec.template.spec.containers[0];
    for (const e of c.env) expect(knownVariables, e.name).toContain(e.name);
    const env = { ...configMap.data, ...envOf(gpuApi) } as Record<string, string>;
    const cfg = loadConfig(env);
    expect(['auto', 'webgpu']).toContain(cfg.TFJS_BACKEND);
    expect(cfg.BATCH_MAX_SIZE).toBeGreaterThan(1);
    // Each worker takes a batch's worth of tasks, so concurrent requests meet in a batch.
    expect(resolvedConcurrentTasks(cfg)).toBe(cfg.BATCH_MAX_SIZE);
    const workers = Number(env.WORKERS);
    expect(workers).toBeGreaterThan(0);
    // Every worker's device-memory budget together within a 16 GiB GPU.
    expect(workers * (cfg.GPU_MEMORY_BUDGET_MB as number)).toBeLessThanOrEqual(16 * 1024);
    const limitBytes = bytesOf(c.resources.limits.memory);
    const heapMb = resolvedWorkerHeapMb(cfg, limitBytes) as number;
    expect(workers * heapMb + cfg.WORKER_HEAP_RESERVE_MB).toBeLessThanOrEqual(limitBytes / 2 ** 20);
  });

  const kubectl = spawnSync('kubectl', ['kustomize', gpuDir], { encoding: 'utf8', timeout: 60_000 });
  it.skipIf(kubectl.status !== 0)(
    'matches what `kubectl kustomize` renders, where kubectl is installed',
    () => {
      const key = (d: Doc) => `${d.kind}/${d.metadata.name}`;
      const byKey = (docs: Doc[]) => Object.fromEntries(docs.map((d) => [key(d), d]));
      const real = parseAllDocuments(kubectl.stdout).map((d) => d.toJS() as Doc);
      expect(byKey(rendered)).toEqual(byKey(real));
    },
  );
});
