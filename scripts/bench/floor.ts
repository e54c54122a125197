import { loadCaller } from "./fixtures.js";
import { healthCheck } from "./health-service.js";
import { alternatingMedians, type LoadResult, runLoad, runLoadOn } from "./load.js";
import { FLOOR_COMMAND, startServerProcess } from "./server-process.js";
import type { BenchSettings } from "./settings.js";

/** Callers of the floor measurement: the row of section 1 the targets are judged at. */
export const FLOOR_CALLERS = 16;

/**
 * The framework floor at `callers`: a trivial Check on connect-node alone
 * (floor-server.ts), in a process of its own with `npm start`'s Node flags,
 * from the same load generator, after the same JIT warm-up as section 1.
 */
export async function benchFloor(settings: BenchSettings, callers: number): Promise<LoadResult> {
  const server = await startServerProcess({}, { command: FLOOR_COMMAND });
  const caller = await loadCaller(server.baseUrl, "bench-floor");
  try {
    const check = healthCheck(caller);
    await runLoad({ callers, durationMs: settings.warmupMs, maxCalls: settings.maxCalls }, check);
    const options = { callers, durationMs: settings.loadMs, maxCalls: settings.maxCalls, warmupCalls: callers * settings.warmupPerCaller };
    const [medians] = await alternatingMedians(settings.runs, [() => runLoadOn(server, options, check)]);
    return medians;
  } finally {
    caller.close();
    await server.stop();
  }
}
