#!/usr/bin/env node
import { reportFailure } from "./exit-codes.js";
import { buildProgram, packageVersion, versionRequested } from "./program.js";

// A reader that stops early (`| grep -q`, `| head`) closes the pipe: the rest of
// the output has no one to read it, so it is dropped instead of crashing on EPIPE
// with a stack trace. The command still ends with its own exit code (a blocked
// evaluation stays 1), so a pipeline never reads success into a failure.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") return;
  throw err;
});

if (versionRequested(process.argv.slice(2))) {
  process.stdout.write(`releasegate ${packageVersion()}\n`);
} else {
  // Commands report their own failures (exit-codes.ts); this catches the rest.
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => reportFailure(err));
}
