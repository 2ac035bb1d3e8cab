import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 30_000,
          // Integration tests spawn servers and redis-server processes; files run in parallel
          // workers but a 2-core machine gains little from more than two.
          maxWorkers: 2,
        },
      },
    ],
  },
});
