import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Command } from "commander";
import { InvalidArgumentError as UsageError } from "commander";
import type { Project } from "../gen/forest/v1/policy_pb.js";

/** Default server address (RELEASEGATE_SERVER overrides). */
export const DEFAULT_SERVER = "http://127.0.0.1:50051";

/** Exit codes: scripts and pipelines branch on these. */
export const EXIT = {
  ok: 0,
  /** EvaluatePolicies did not pass (a policy blocks the release). */
  blocked: 1,
  /** Bad command line or configuration. */
  usage: 2,
  /** The server answered an error (code and message on stderr). */
  rpc: 3,
} as const;

export type OutputFormat = "json" | "table";

export interface GlobalOptions {
  server: string;
  token?: string;
  output: OutputFormat;
}

/** What every client command needs: a connected client and a printer. */
export interface CliContext {
  client<S extends DescService>(service: S): Client<S>;
  readonly output: OutputFormat;
  /** Prints a message as proto JSON, or a table built by `table`. */
  print<D extends DescMessage>(schema: D, message: MessageShape<D>, table: () => string[][]): void;
}

/** Builds the context from the root command's options (after parsing). */
export function cliContext(command: Command): CliContext {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const token = opts.token ?? process.env.RELEASEGATE_TOKEN;
  const auth: Interceptor = (next) => (req) => {
    if (token !== undefined && token !== "") req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: opts.server, interceptors: [auth] });
  return {
    client: (service) => createClient(service, transport),
    output: opts.output,
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
 * Runs an RPC action: a ConnectError becomes `error: CODE: message` on stderr
 * and exit code 3; anything else propagates.
 */
export async function runRpc(action: () => Promise<unknown>): Promise<void> {
  try {
    const code = await action();
    if (typeof code === "number") process.exitCode = code;
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    const name = Code[err.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    process.stderr.write(`error: ${name}: ${err.rawMessage}\n`);
    process.exitCode = EXIT.rpc;
  }
}

/**
 * A command action that talks to the server: `run` gets the client context
 * and commander's arguments (positional values, options, the command);
 * server errors become exit code 3 (see runRpc).
 */
export function rpcAction<A extends unknown[]>(
  run: (ctx: CliContext, ...args: A) => Promise<unknown>,
): (...args: A) => Promise<void> {
  return (...args) => runRpc(() => run(cliContext(args[args.length - 1] as Command), ...args));
}

