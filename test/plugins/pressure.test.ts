/**
 * under-pressure calls our handler for the first threshold that is over, and only that one. An event-loop delay of
 * Infinity (no sample in the interval: a loaded machine) is not a measured overload, but it must not hide the heap,
 * RSS and utilisation limits that under-pressure would have checked after it.
 */
import { describe, expect, it } from 'vitest';
import { pressureVerdict } from '../../src/plugins/external/pressure.js';

const sample = {
  eventLoopDelay: Number.POSITIVE_INFINITY,
  heapUsed: 500,
  rssBytes: 900,
  eventLoopUtilized: 0.5,
};
const off = { PRESSURE_MAX_HEAP_BYTES: 0, PRESSURE_MAX_RSS_BYTES: 0, PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0 };

describe('pressureVerdict', () => {
  it('refuses a measured overload of any kind', () => {
    expect(pressureVerdict('eventLoopDelay', 1500, sample, off)).toEqual({
      type: 'eventLoopDelay',
      value: 1500,
    });
    expect(pressureVerdict('heapUsedBytes', 500, sample, off)).toEqual({ type: 'heapUsedBytes', value: 500 });
  });

  it('lets an unmeasured event-loop delay through when nothing else is over', () => {
    expect(pressureVerdict('eventLoopDelay', Number.POSITIVE_INFINITY, sample, off)).toBeNull();
    const within = {
      PRESSURE_MAX_HEAP_BYTES: 1000,
      PRESSURE_MAX_RSS_BYTES: 1000,
      PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0.9,
    };
    expect(pressureVerdict('eventLoopDelay', Number.POSITIVE_INFINITY, sample, within)).toBeNull();
  });

  it('still applies the heap, RSS and utilisation limits behind an unmeasured event-loop delay', () => {
    const inf = Number.POSITIVE_INFINITY;
    expect(pressureVerdict('eventLoopDelay', inf, sample, { ...off, PRESSURE_MAX_HEAP_BYTES: 1 })).toEqual({
      type: 'heapUsedBytes',
      value: 500,
    });
    expect(pressureVerdict('eventLoopDelay', inf, sample, { ...off, PRESSURE_MAX_RSS_BYTES: 800 })).toEqual({
      type: 'rssBytes',
      value: 900,
    });
    expect(
      pressureVerdict('eventLoopDelay', inf, sample, { ...off, PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0.25 }),
    ).toEqual({ type: 'eventLoopUtilization', value: 0.5 });
  });
});
