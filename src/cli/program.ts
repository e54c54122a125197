import { Command, Option } from "commander";
import { approversCommand, historyCommand, voteCommands, watchCommand } from "./approval.js";
import { breakGlassCommand } from "./break-glass.js";
import { DEFAULT_TIMEOUT_SECONDS, EXIT, positiveInt } from "./context.js";
import { grantsCommand, groupsCommand } from "./directory.js";
import { environmentsCommand } from "./environments.js";
import { inboxCommand } from "./inbox.js";
import { loginCommand, logoutCommand, whoamiCommand } from "./login.js";
import { policyCommand } from "./policy.js";
import { deployCommand, intentCommand } from "./release.js";
import { requestCommands } from "./request.js";
import { migrateCommand, serveCommand } from "./server-commands.js";
import { tokenCommand } from "./token.js";
import { uiCommand } from "./ui.js";
import { packageVersion } from "./version.js";
import { webhooksCommand } from "./webhooks.js";

/** `releasegate --version` / `-V` as the only argument. */
export function versionRequested(args: readonly string[]): boolean {
  return args.length === 1 && (args[0] === "--version" || args[0] === "-V");
}

export { packageVersion };

/** The `releasegate` command tree (main.ts parses argv with it; tests walk it). */
export function buildProgram(): Command {
  const program = new Command("releasegate")
    .description(
      "releasegate: release-approval policy engine. Client commands talk gRPC to the server:\n" +
        "  server: --server, else RELEASEGATE_SERVER, else the one of `releasegate login`, else http://127.0.0.1:50051\n" +
        "  token:  --token, else RELEASEGATE_TOKEN, else the one `releasegate login` saved for that server\n" +
        "Exit codes: 0 ok, 1 evaluation not passed, 2 usage or configuration error, 3 the server answered an error,\n" +
        "4 not signed in or token refused, 5 the server is unreachable.",
    )
    // Not commander's .version(): program options are recognised after the
    // subcommand too, and `intent register --version 1.2.3` must reach intent.
    .addHelpText("after", "\n`releasegate --version` (or -V) prints the version.\n")
    .option("-s, --server <address>", "server, e.g. localhost:50051 or https://rg.example.com (env RELEASEGATE_SERVER)")
    .option("-t, --token <jwt>", "bearer token (env RELEASEGATE_TOKEN)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"))
    .option("--timeout <seconds>", "deadline of each call (streams have none)", positiveInt, DEFAULT_TIMEOUT_SECONDS)
    .showHelpAfterError();

  for (const cmd of [
    loginCommand(),
    logoutCommand(),
    whoamiCommand(),
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
    inboxCommand(),
    ...requestCommands(),
    breakGlassCommand(),
    historyCommand(),
    watchCommand(),
    webhooksCommand(),
    uiCommand(),
  ])
    program.addCommand(cmd);

  /** Usage errors exit 2 everywhere (commander's default is 1, which means "blocked" here). */
  function exitCodes(cmd: Command): void {
    cmd.exitOverride((err) => {
      if (
        err.code === "commander.helpDisplayed" ||
        err.code === "commander.help" ||
        err.exitCode === 0
      )
        process.exit(0);
      process.exit(err.exitCode === 1 ? EXIT.usage : err.exitCode);
    });
    for (const sub of cmd.commands) exitCodes(sub);
  }
  exitCodes(program);
  return program;

}
