import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort } from "./support/pg-cluster.js";

// A newcomer without Postgres, NATS or nats-server runs `npm test`: each test
// file that needs the missing service fails at once, with one line naming it
// and the variable to set. Proven by running vitest itself on three real test
// files, with DATABASE_URL and NATS_URL pointing at a port nobody listens on.

const VITEST = join(process.cwd(), "node_modules/vitest/vitest.mjs");

/** The files and the one line each must fail with. */
const cases = (port: number) => [
  {
    file: "test/db-listen-reconnect.test.ts",
    line: `ServiceUnavailableError: Postgres is not reachable at 127.0.0.1:${port} (set DATABASE_URL to a Postgres the tests may create databases on): ECONNREFUSED`,
  },
  {
    file: "test/coordinator.test.ts",
    line: `ServiceUnavailableError: NATS is not reachable at 127.0.0.1:${port} (set NATS_URL to a NATS server with JetStream, e.g. nats-server -js): ECONNREFUSED`,
  },
  {
    file: "test/fault-nats.test.ts",
    line: "ServiceUnavailableError: nats-server is not executable at /nonexistent/nats-server (set NATS_SERVER_BIN to the nats-server binary the fault tests start)",
  },
];

function runVitest(files: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  // The child is a run of its own, not a worker of this one.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST")));
  const child = spawn(process.execPath, [VITEST, "run", ...files], {
    env: { ...inherited, NO_COLOR: "1", ...env },
    stdio: "pipe",
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, output })));
}

describe("a test run whose services are missing", () => {
  it("fails each file that needs one at once, in one line naming the service and the variable to set", async () => {
    const port = await freePort();
    const started = Date.now();
    const { code, output } = await runVitest(
      cases(port).map((c) => c.file),
      {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test`,
        NATS_URL: `nats://127.0.0.1:${port}`,
        NATS_SERVER_BIN: "/nonexistent/nats-server",
      },
    );
    // Well under the 30 s test and 60 s hook timeouts: nothing waited for a service.
    expect(Date.now() - started, output).toBeLessThan(30_000);
    expect(code, output).toBe(1);
    const lines = output.split("\n").map((l) => l.trim());
    for (const { file, line } of cases(port)) {
      // vitest's failure block for the file: its name, then our line, then no stack.
      const at = lines.findIndex((l) => l.startsWith(`FAIL  ${file}`));
      expect(at, output).toBeGreaterThanOrEqual(0);
      expect(lines[at + 1], output).toBe(line);
      expect(lines[at + 2], output).toMatch(/^⎯+/);
    }
    // No connection errors besides those lines (and the run's one-line notice of each).
    const refused = lines.filter((l) => l.includes("ECONNREFUSED"));
    for (const l of refused) expect(l, output).toMatch(/(Postgres|NATS) is not reachable at 127\.0\.0\.1:\d+ \(set /);
    expect(output).not.toMatch(/^\s*(Error|AggregateError|ConnectionError|TimeoutError)\b/m);
    expect(output).toMatch(/Test Files {2}3 failed \(3\)/);
  }, 60_000);
});
