/**
 * The training loop every family runs: steps from where the checkpoint left off, progress, a checkpoint every N
 * minutes, and a stop at a step (`--stop-at-step`), at a time (`--max-minutes`) or at the end. A loss that is not
 * a finite number stops the run at once, without a checkpoint: the last good one stays where it was, and the
 * error says which step it holds.
 */
import type { NamedArray } from '../tensor-file.js';
import { type CheckpointStateBase, writeCheckpoint } from './checkpoint.js';
import { createProgress, type Field, type Progress } from './progress.js';

export interface StepResult {
  loss: number;
  /** Figures to show beside the loss (the family's own). */
  fields?: Record<string, Field>;
}

export type StopReason = 'done' | 'stop-at-step' | 'time-limit';

export interface LoopOptions {
  /** First step to run (the checkpoint's step after a resume). */
  startStep: number;
  /** Steps of the whole schedule. */
  steps: number;
  stopAtStep?: number;
  /** Wall-clock minutes for this run; at the limit it checkpoints and stops. */
  maxMinutes?: number;
  checkpointMinutes: number;
  progress: Progress;
  step(step: number): Promise<StepResult> | StepResult;
  /** Writes a checkpoint after `done` steps (not called at the end: the family exports then). */
  checkpoint(done: number): Promise<void>;
  /** Where the checkpoints go (for messages). */
  checkpointDir: string;
  now?: () => number;
}

export class TrainingDiverged extends Error {
  readonly code = 'TRAINING_DIVERGED';
  constructor(
    readonly step: number,
    readonly loss: number,
    readonly lastCheckpoint: number | null,
    checkpointDir: string,
  ) {
    super(
      `training stopped: the loss is ${String(loss)} at step ${step + 1} (it diverged, or the data has ` +
        'non-finite values); nothing was saved after it. ' +
        (lastCheckpoint === null
          ? 'No checkpoint was written yet: start again with a lower --lr.'
          : `The last good checkpoint (step ${lastCheckpoint}) is kept in ${checkpointDir}: continue from it ` +
            'with --resume and a lower --lr.'),
    );
    this.name = 'TrainingDiverged';
  }
}

export interface LoopResult {
  /** Steps done in all (the step to resume at). */
  done: number;
  reason: StopReason;
  /** This run's losses, one per step. */
  losses: number[];
}

export async function runLoop(options: LoopOptions): Promise<LoopResult> {
  const now = options.now ?? (() => performance.now());
  const started = now();
  let lastCheckpointAt = started;
  let lastCheckpoint: number | null = options.startStep > 0 ? options.startStep : null;
  const losses: number[] = [];
  const save = async (done: number) => {
    await options.checkpoint(done);
    lastCheckpoint = done;
    lastCheckpointAt = now();
  };
  for (let step = options.startStep; step < options.steps; step++) {
    const { loss, fields } = await options.step(step);
    if (!Number.isFinite(loss)) {
      options.progress.stop();
      throw new TrainingDiverged(step, loss, lastCheckpoint, options.checkpointDir);
    }
    losses.push(loss);
    const done = step + 1;
    options.progress.update(done, loss, fields);
    if (done === options.steps) break;
    if (options.stopAtStep !== undefined && done >= options.stopAtStep) {
      await save(done);
      options.progress.stop();
      options.progress.log(`stopped at step ${done} of ${options.steps} (continue with --resume)`);
      return { done, reason: 'stop-at-step', losses };
    }
    if (options.maxMinutes !== undefined && now() - started >= options.maxMinutes * 60_000) {
      await save(done);
      options.progress.stop();
      options.progress.log(
        `stopped after ${options.maxMinutes} min at step ${done} of ${options.steps} (continue with --resume)`,
      );
      return { done, reason: 'time-limit', losses };
    }
    if (now() - lastCheckpointAt >= options.checkpointMinutes * 60_000) await save(done);
  }
  options.progress.stop();
  return { done: options.steps, reason: 'done', losses };
}

export interface TrainingOptions {
  /** The progress label, e.g. 'classifier'. */
  label: string;
  startStep: number;
  /** Seconds of the runs before this one (the checkpoint's, after a resume). */
  elapsedBefore: number;
  /** The family's options: the shared ones of core/options (`log`: plain lines there, else a bar on a terminal). */
  options: {
    steps: number;
    stopAtStep?: number;
    maxMinutes?: number;
    checkpointMinutes: number;
    checkpointDir: string;
    log?: (line: string) => void;
  };
  step(step: number): Promise<StepResult> | StepResult;
  /** What a checkpoint holds: the family's arrays and state (the step and the seconds so far are added). */
  snapshot(): Promise<{ arrays: NamedArray[]; state: object }>;
  /** After each checkpoint (not at the end): e.g. a partial export of the model so far. */
  afterCheckpoint?(done: number, log: (line: string) => void): Promise<void>;
}

/**
 * runLoop with the core's progress and checkpoints: what a family runs between its start (fresh or resumed) and
 * its export. Returns the loop's result and the seconds of all runs so far.
 */
export async function runTraining(training: TrainingOptions): Promise<LoopResult & { seconds: number }> {
  const { options, startStep } = training;
  const runStart = performance.now();
  const elapsed = () => training.elapsedBefore + (performance.now() - runStart) / 1000;
  const progress = createProgress({
    ...{ label: training.label, total: options.steps, start: startStep },
    ...(options.log && { tty: false, print: options.log }),
  });
  const result = await runLoop({
    ...{ startStep, steps: options.steps, stopAtStep: options.stopAtStep, maxMinutes: options.maxMinutes },
    ...{ checkpointMinutes: options.checkpointMinutes, checkpointDir: options.checkpointDir, progress },
    step: (step) => training.step(step),
    checkpoint: async (done) => {
      const { arrays, state } = await training.snapshot();
      const base: CheckpointStateBase = { step: done, elapsedSeconds: elapsed() };
      await writeCheckpoint(options.checkpointDir, arrays, { ...state, ...base });
      progress.log(`checkpoint step ${done}`);
      await training.afterCheckpoint?.(done, (line) => progress.log(line));
    },
  });
  return { ...result, seconds: elapsed() };
}
