/**
 * A model's noise scheduler, built once: diffusers keeps schedulers apart from models and pipelines; here the
 * schedule of a prior comes from its manifest and is shared by every request (restore, detect) on that model.
 */
import { type DdpmSchedule, linearSchedule } from './schedule.js';

const schedules = new WeakMap<object, DdpmSchedule>();

/**
 * The DDPM scheduler of a model, from its manifest's `schedule` section (src/nn/manifest-sections.ts), built once
 * per manifest object and reused by every request on that model.
 */
export function schedulerFor(
  manifest: object,
  config: { timesteps?: number; betaStart?: number; betaEnd?: number } | undefined,
): DdpmSchedule {
  let schedule = schedules.get(manifest);
  if (!schedule) {
    schedule = linearSchedule({ ...config });
    schedules.set(manifest, schedule);
  }
  return schedule;
}
