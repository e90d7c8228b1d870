import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: the compute pool already spawns worker threads, so keep test files mostly serial.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
