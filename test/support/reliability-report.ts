import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Where the reliability suite leaves its counters (one JSON file per test
 * file, overwritten each run); `npm run reliability:report` turns them into
 * docs/reliability.md. Override with RELIABILITY_REPORT_DIR.
 */
export function reportDir(): string {
  return process.env.RELIABILITY_REPORT_DIR ?? join(tmpdir(), "releasegate-reliability");
}

/** One row of the summary table. */
export interface ReportRow {
  /** What was tried, e.g. "gRPC requests fuzzed". */
  readonly check: string;
  /** How many cases, calls or faults. */
  readonly count: number;
  /** What held, e.g. "no INTERNAL/UNKNOWN; server answered after each". */
  readonly held: string;
}

/** The shape of a report file. */
export interface SuiteReport {
  readonly suite: string;
  readonly database: string;
  readonly finishedAt: string;
  readonly rows: readonly ReportRow[];
}

/**
 * Collects counters during a test file; `write()` (in afterAll) records only
 * the rows whose tests got to `add` — a failed assertion throws before it.
 */
export class SuiteCounters {
  readonly #suite: string;
  readonly #rows = new Map<string, { count: number; held: string }>();

  constructor(suite: string) {
    this.#suite = suite;
  }

  add(check: string, count: number, held: string): void {
    const row = this.#rows.get(check);
    if (row === undefined) this.#rows.set(check, { count, held });
    else row.count += count;
  }

  write(): void {
    if (this.#rows.size === 0) return;
    const dir = reportDir();
    mkdirSync(dir, { recursive: true });
    const report: SuiteReport = {
      suite: this.#suite,
      database:
        process.env.RELEASEGATE_TEST_DB ?? (process.env.DATABASE_URL !== undefined ? "postgres" : "pglite"),
      finishedAt: new Date().toISOString(),
      rows: [...this.#rows].map(([check, r]) => ({ check, count: r.count, held: r.held })),
    };
    writeFileSync(join(dir, `${this.#suite}.json`), `${JSON.stringify(report, null, 2)}\n`);
  }
}
