import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests spawn servers and redis-server processes; a 2-core machine gains little
    // from more than two workers, and more make timing-sensitive drain tests noisy.
    maxWorkers: 2,
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
        },
      },
    ],
  },
});
