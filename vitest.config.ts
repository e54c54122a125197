import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Probes Postgres, NATS and nats-server once; fixtures fail in one line when theirs is missing.
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // 2 cores: more workers only thrash Postgres and PGlite start-up.
    maxWorkers: 2,
  },
});
