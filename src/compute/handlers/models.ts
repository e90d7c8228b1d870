/**
 * Model tasks in a worker: report the backend, load + warm a model, run a model on a tensor.
 */
import { threadId } from 'node:worker_threads';
import { forgetModel, getModel, warmupModel } from '../../nn/repository.js';
import './layers.js';
import { batcherStats, batchingOptions } from '../../nn/batcher.js';
import { cancelledTaskCount } from '../../util/cancellation.js';
import type { TaskInput, TaskResult } from '../task-types.js';
import type { HandlerContext } from './context.js';

export async function systemInfo(_input: unknown, ctx: HandlerContext): Promise<TaskResult<'system.info'>> {
  const rt = await ctx.tfjs();
  return {
    threadId,
    backend: rt.backend,
    native: rt.native,
    numTensors: rt.tf.memory().numTensors,
    tried: rt.tried,
    batching: { ...batchingOptions(), ...batcherStats() },
    cancelledTasks: cancelledTaskCount(),
    ...(rt.adapter
      ? {
          adapter: {
            vendor: rt.adapter.vendor,
            architecture: rt.adapter.architecture,
            device: rt.adapter.device,
            description: rt.adapter.description,
            software: rt.adapter.software,
          },
        }
      : {}),
  };
}

export async function warmup(
  input: TaskInput<'model.warmup'>,
  ctx: HandlerContext,
): Promise<TaskResult<'model.warmup'>> {
  const rt = await ctx.tfjs();
  const t0 = Date.now();
  const loaded = await getModel(rt.tf, ctx.options.modelsDir, input.name, input.version);
  const inputs = (loaded.model as { inputs?: { shape: (number | null)[] }[] }).inputs ?? [];
  if (inputs.length > 1) {
    // Multi-input models (e.g. diffusion: image and timestep): zeros of each input's shape, free dims 32.
    const { tf } = rt;
    const outputs = tf.tidy(() => {
      const xs = inputs.map((inp) => tf.zeros(inp.shape.map((d, i) => (d ?? (i === 0 ? 1 : 32)) as number)));
      const out = (loaded.model as import('@tensorflow/tfjs').LayersModel).predict(xs);
      return Array.isArray(out) ? out : [out];
    });
    try {
      for (const t of outputs) await t.data(); // async: WebGPU has no synchronous read-back
    } finally {
      tf.dispose(outputs);
    }
  } else {
    await warmupModel(rt.tf, loaded.model, loaded.manifest);
  }
  return {
    name: input.name,
    version: input.version,
    backend: rt.backend,
    ms: Date.now() - t0,
    numTensors: rt.tf.memory().numTensors,
  };
}

export async function infer(
  input: TaskInput<'model.infer'>,
  ctx: HandlerContext,
): Promise<TaskResult<'model.infer'>> {
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.name, input.version);
  const before = tf.memory().numTensors;
  let out: Float32Array = new Float32Array(0);
  let shape: number[] = [];
  for (let r = 0; r < (input.repeat ?? 1); r++) {
    const y = tf.tidy(() => {
      const x = tf.tensor(input.data, input.shape, 'float32');
      return loaded.model.predict(x) as import('@tensorflow/tfjs').Tensor;
    });
    try {
      out = (await y.data()) as Float32Array;
      shape = y.shape;
    } finally {
      y.dispose();
    }
  }
  return { data: out, shape, numTensorsBefore: before, numTensorsAfter: tf.memory().numTensors };
}

export async function unload(
  input: TaskInput<'model.unload'>,
  ctx: HandlerContext,
): Promise<TaskResult<'model.unload'>> {
  return { unloaded: await forgetModel(ctx.options.modelsDir, input.name, input.version) };
}
