#!/usr/bin/env node
import { reportFailure } from "./exit-codes.js";
import { buildProgram, packageVersion, versionRequested } from "./program.js";

if (versionRequested(process.argv.slice(2))) {
  process.stdout.write(`releasegate ${packageVersion()}\n`);
} else {
  // Commands report their own failures (exit-codes.ts); this catches the rest.
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => reportFailure(err));
}
