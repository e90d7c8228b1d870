/**
 * The worker-side task table: task kind -> handler. Modules are imported lazily so that a worker which only
 * solves transport problems never loads TF.js.
 */
import type { TaskKind } from '../task-types.js';
import type { Handler } from './context.js';

type Loader = () => Promise<Handler>;

export const handlers: Record<TaskKind, Loader> = {
  'system.info': async () => (await import('./models.js')).systemInfo,
  'model.warmup': async () => (await import('./models.js')).warmup,
  'model.infer': async () => (await import('./models.js')).infer,
  'model.unload': async () => (await import('./models.js')).unload,
  'test.busy': async () => (await import('./test-tasks.js')).busy,
  'test.crash': async () => (await import('./test-tasks.js')).crash,
  'test.fail': async () => (await import('./test-tasks.js')).failWith,
  'ot.solve': async () => (await import('./ot.js')).solve,
  'denoise.noise2score': async () => (await import('./denoise.js')).noise2score,
  'denoise.mid': async () => (await import('./denoise.js')).mid,
  'restore.reddiff': async () => (await import('./restore.js')).restore,
  'detect.epsad': async () => (await import('./detect.js')).detect,
};

export const TEST_ONLY_KINDS = new Set<TaskKind>(['test.busy', 'test.crash', 'test.fail']);
