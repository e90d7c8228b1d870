/**
 * The worker-side task table: task kind -> handler. Modules are imported lazily so that a worker which only
 * solves transport problems never loads TF.js. The main thread's types (src/compute/task-types.ts) are derived
 * from this table: a handler's input and result types are the task's, so no task is typed `any` or `unknown`.
 */
import type { SystemTaskTable } from '../task-types.js';
import type { Handler } from './context.js';

/** The tasks of the service itself: backend, models, and the test tasks (ENABLE_TEST_TASKS). */
const systemTasks: { [K in keyof SystemTaskTable]: () => Promise<Handler<K>> } = {
  'system.info': async () => (await import('./models.js')).systemInfo,
  'model.warmup': async () => (await import('./models.js')).warmup,
  'model.infer': async () => (await import('./models.js')).infer,
  'model.unload': async () => (await import('./models.js')).unload,
  'test.busy': async () => (await import('./test-tasks.js')).busy,
  'test.crash': async () => (await import('./test-tasks.js')).crash,
  'test.fail': async () => (await import('./test-tasks.js')).failWith,
  'test.gpu-lost': async () => (await import('./test-tasks.js')).gpuLost,
  'test.share': async () => (await import('./test-tasks.js')).share,
  'test.share-part': async () => (await import('./test-tasks.js')).sharePart,
};

/** The operations' worker sides (src/operations/<op>/task.ts): one line per task. */
export const operationTasks = {
  /** Optimal transport: any solver. */
  'ot.solve': async () => (await import('../../operations/ot/task.js')).solve,
  /** Noise2Score denoising of one image. */
  'denoise.noise2score': async () => (await import('../../operations/denoise/task.js')).noise2score,
  /** Windows of one Noise2Score score map, on a worker lent to the request (src/compute/shared-work.ts). */
  'denoise.windows': async () => (await import('../../operations/denoise/task.js')).windows,
  /** MID's mask passes of one image, on a worker lent to the request. */
  'denoise.mid-passes': async () => (await import('../../operations/denoise/task.js')).midPasses,
  /** MID real-noise denoising of one image, K masks averaged. */
  'denoise.mid': async () => (await import('../../operations/denoise/task.js')).mid,
  /** RED-Diff restoration of one grey image. */
  'restore.reddiff': async () => (await import('../../operations/restore/task.js')).restore,
  /** EPS-AD adversarial detection of a batch of 28x28 grey images. */
  'detect.epsad': async () => (await import('../../operations/detect/task.js')).detect,
  'test.checksum': async () => (await import('../../operations/test-checksum/task.js')).checksum,
};

export const handlers = { ...systemTasks, ...operationTasks };

/** Tasks that exist only with ENABLE_TEST_TASKS: every kind under `test.`. */
export const isTestOnlyKind = (kind: string) => kind.startsWith('test.');
