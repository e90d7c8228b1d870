/**
 * Entry of a helper thread of the threaded CPU soft-min (online-threads.ts): it holds its own CpuSoftmin (its
 * own WebAssembly memory) for one solve at a time and runs its share of each call (runShare) on the solve's
 * shared memory, answering with its partial sum.
 */
import { parentPort } from 'node:worker_threads';
import { CpuSoftmin } from './online-cpu.js';
import { type HelperMessage, runShare, type SharedViews, sharedViews } from './online-threads-shared.js';

let state: { cpu: CpuSoftmin; views: SharedViews; index: number } | undefined;

parentPort?.on('message', (msg: HelperMessage) => {
  if (msg.op === 'init') {
    const views = sharedViews(msg.layout, msg.buffer, msg.control);
    const cpu = new CpuSoftmin({ ...msg.geometry, x: views.x, y: views.y });
    state = { cpu, views, index: msg.index };
    return;
  }
  if (msg.op === 'free') {
    state = undefined;
    return;
  }
  if (!state) throw new Error(`online helper thread: '${msg.op}' before init`);
  parentPort?.postMessage({ seq: msg.seq, value: runShare(state.cpu, state.views, state.index, msg) });
});
