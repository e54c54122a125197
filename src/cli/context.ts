import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Command } from "commander";
import { InvalidArgumentError as UsageError } from "commander";
import type { Project } from "../gen/forest/v1/policy_pb.js";
import { CliError, EXIT, loginHint, reportFailure } from "./exit-codes.js";
import { resolveSession, type Session } from "./session.js";

export { EXIT } from "./exit-codes.js";
export { DEFAULT_SERVER } from "./server-address.js";

/** Default deadline of one call, in seconds (--timeout); streams (watch) have none. */
export const DEFAULT_TIMEOUT_SECONDS = 30;

export type OutputFormat = "json" | "table";

export interface GlobalOptions {
  server?: string;
  token?: string;
  output: OutputFormat;
  timeout: number;
}

/** What every client command needs: a connected client and a printer. */
export interface CliContext {
  client<S extends DescService>(service: S): Client<S>;
  readonly output: OutputFormat;
  /** Base URL the client talks to, and where the token came from. */
  readonly session: Session;
  /** Prints a message as proto JSON, or a table built by `table`. */
  print<D extends DescMessage>(schema: D, message: MessageShape<D>, table: () => string[][]): void;
}

export interface CliContextOptions {
  /** Without a token: exit 4 before calling (default true; `login` checks a token it was handed). */
  readonly requireToken?: boolean;
  /** Use this token instead of the session's (login verifies the one it is about to save). */
  readonly token?: string;
}

/** Builds the context from the root command's options (after parsing): flag > env > config file. */
export function cliContext(command: Command, options: CliContextOptions = {}): CliContext {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const session = resolveSession({ server: opts.server, token: opts.token });
  const token = options.token ?? session.token;
  if (token === undefined && options.requireToken !== false)
    throw new CliError(`not signed in to ${session.server}: ${loginHint(session.server)}`, EXIT.auth);
  const auth: Interceptor = (next) => (req) => {
    if (token !== undefined && token !== "") req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: session.server,
    interceptors: [auth],
    defaultTimeoutMs: opts.timeout * 1000,
  });
  return {
    client: (service) => createClient(service, transport),
    output: opts.output,
    session,
    print(schema, message, table) {
      if (opts.output === "json") {
        process.stdout.write(`${JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true }))}\n`);
        return;
      }
      process.stdout.write(renderTable(table()));
    },
  };
}

/** Left-aligned columns separated by two spaces; the first row is the header. */
export function renderTable(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return `${rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")}\n`;
}

/** `--project org/project` (or RELEASEGATE_PROJECT) → forest.v1.Project fields. */
export function parseProject(value: string): { organisation: string; project: string } {
  const match = /^([^/\s]+)\/([^/\s]+)$/.exec(value);
  if (match === null) throw new UsageError("expected ORGANISATION/PROJECT, e.g. acme/web");
  return { organisation: match[1]!, project: match[2]! };
}

/** The project option every project-scoped command takes, required unless RELEASEGATE_PROJECT is set. */
export function projectOption(command: Command): Command {
  const fromEnv = process.env.RELEASEGATE_PROJECT;
  return command
    .option(
      "-p, --project <org/project>",
      "organisation and project (env RELEASEGATE_PROJECT)",
      parseProject,
      fromEnv !== undefined && fromEnv !== "" ? parseProject(fromEnv) : undefined,
    )
    .hook("preAction", (cmd) => {
      if (cmd.opts().project === undefined) cmd.error("error: required option '-p, --project <org/project>' not specified", { exitCode: EXIT.usage });
    });
}

export type ProjectFields = Pick<Project, "organisation" | "project">;

/** Integer option parser with a name for the error. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError("expected a positive integer");
  return n;
}

/**
 * Runs a client command: its return value (a number) is the exit code; a
 * failure goes through the one mapping of exit-codes.ts (3 server error,
 * 4 not signed in or token refused, 5 unreachable, 2 usage).
 */
export async function runRpc(action: () => Promise<unknown>, server?: () => string | undefined): Promise<void> {
  try {
    const code = await action();
    if (typeof code === "number") process.exitCode = code;
  } catch (err) {
    reportFailure(err, server?.());
  }
}

/**
 * A command action that talks to the server: `run` gets the client context
 * and commander's arguments (positional values, options, the command).
 */
export function rpcAction<A extends unknown[]>(
  run: (ctx: CliContext, ...args: A) => Promise<unknown>,
): (...args: A) => Promise<void> {
  return (...args) => {
    let ctx: CliContext | undefined;
    return runRpc(
      () => {
        ctx = cliContext(args[args.length - 1] as Command);
        return run(ctx, ...args);
      },
      () => ctx?.session.server,
    );
  };
}
