import type { TestProject } from "vitest/node";
import { probeServices } from "./services.js";

/**
 * Probes Postgres, NATS and nats-server once per run (vitest `globalSetup`)
 * and provides the results to every test file (`requireService`). A missing
 * service is named here once; only the test files that need it fail.
 */
export default async function setup(project: TestProject): Promise<void> {
  const services = await probeServices();
  for (const status of Object.values(services))
    if (!status.ok) process.stderr.write(`test services: ${status.message}; the tests that need it will fail\n`);
  project.provide("services", services);
}
