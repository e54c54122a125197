import { Command, Option } from "commander";
import { approversCommand, historyCommand, voteCommands, watchCommand } from "./approval.js";
import { breakGlassCommand } from "./break-glass.js";
import { DEFAULT_SERVER, EXIT } from "./context.js";
import { grantsCommand, groupsCommand } from "./directory.js";
import { environmentsCommand } from "./environments.js";
import { policyCommand } from "./policy.js";
import { deployCommand, intentCommand } from "./release.js";
import { migrateCommand, serveCommand } from "./server-commands.js";
import { tokenCommand } from "./token.js";
import { uiCommand } from "./ui.js";

/** The `releasegate` command tree (main.ts parses argv with it; tests walk it). */
export function buildProgram(): Command {
  const program = new Command("releasegate")
    .description(
      "releasegate: release-approval policy engine. Client commands talk gRPC to --server with --token.\n" +
        "Exit codes: 0 ok, 1 evaluation blocked, 2 usage or configuration error, 3 the server answered an error.",
    )
    .option("-s, --server <url>", "server URL (env RELEASEGATE_SERVER)", process.env.RELEASEGATE_SERVER || DEFAULT_SERVER)
    .option("-t, --token <jwt>", "bearer token (env RELEASEGATE_TOKEN)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"))
    .showHelpAfterError();

  for (const cmd of [
    serveCommand(),
    migrateCommand(),
    tokenCommand(),
    policyCommand(),
    environmentsCommand(),
    groupsCommand(),
    grantsCommand(),
    intentCommand(),
    deployCommand(),
    ...voteCommands(),
    approversCommand(),
    breakGlassCommand(),
    historyCommand(),
    watchCommand(),
    uiCommand(),
  ])
    program.addCommand(cmd);

  /** Usage errors exit 2 everywhere (commander's default is 1, which means "blocked" here). */
  function exitCodes(cmd: Command): void {
    cmd.exitOverride((err) => {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.exitCode === 0) process.exit(0);
      process.exit(err.exitCode === 1 ? EXIT.usage : err.exitCode);
    });
    for (const sub of cmd.commands) exitCodes(sub);
  }
  exitCodes(program);
  return program;

}
