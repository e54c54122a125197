import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CliError, EXIT, failureOf } from "../../src/cli/exit-codes.js";
import { parseServerAddress } from "../../src/cli/server-address.js";
import { ConfigError } from "../../src/config.js";

describe("parseServerAddress", () => {
  it.each([
    ["localhost:50051", "http://localhost:50051"],
    ["127.0.0.1:8080", "http://127.0.0.1:8080"],
    ["rg.example.com:443", "https://rg.example.com"],
    ["rg.example.com", "http://rg.example.com:50051"],
    ["[::1]:50051", "http://[::1]:50051"],
    ["http://localhost:50051/", "http://localhost:50051"],
    ["https://rg.example.com", "https://rg.example.com"],
    ["https://rg.example.com:8443/releasegate", "https://rg.example.com:8443/releasegate"],
    ["  localhost:50051 ", "http://localhost:50051"],
  ])("reads %j as %s", (input, url) => {
    expect(parseServerAddress(input, "--server")).toBe(url);
  });

  it.each([
    ["", "empty server address"],
    ["localhost:port", "not a server address"],
    ["http://[bad", "not a server address"],
    ["ftp://host:21", "unsupported scheme ftp"],
    ["http://user:pw@host:1", "credentials do not belong in the address"],
    ["host:1?x=1", "no query or fragment allowed"],
  ])("refuses %j naming the source: %s", (input, why) => {
    let caught: unknown;
    try {
      parseServerAddress(input, "RELEASEGATE_SERVER");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CliError);
    expect((caught as CliError).exitCode).toBe(EXIT.usage);
    expect((caught as CliError).message).toContain(`RELEASEGATE_SERVER ${JSON.stringify(input)}: ${why}`);
  });
});

describe("failureOf: one mapping from errors to exit codes", () => {
  const answered = (code: Code) => new ConnectError("boom", code, new Headers({ "content-type": "application/grpc" }));

  it("an answered error is 3 with its code name and message", () => {
    expect(failureOf(answered(Code.PermissionDenied))).toEqual({ exitCode: 3, lines: ["error: PERMISSION_DENIED: boom"] });
    expect(failureOf(answered(Code.Unavailable)).exitCode).toBe(3);
  });

  it("UNAUTHENTICATED is 4 and says how to sign in", () => {
    const f = failureOf(answered(Code.Unauthenticated), "http://h:1");
    expect(f.exitCode).toBe(4);
    expect(f.lines).toEqual([
      "error: UNAUTHENTICATED: boom",
      "the server at http://h:1 refused the token: run `releasegate login --server http://h:1` (or set RELEASEGATE_TOKEN)",
    ]);
  });

  it("a refused connection or a client-side deadline is 5", () => {
    const refused = new ConnectError("connect ECONNREFUSED", Code.Unavailable);
    refused.cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    expect(failureOf(refused, "http://127.0.0.1:1")).toEqual({
      exitCode: 5,
      lines: [
        "error: server unreachable at http://127.0.0.1:1 (ECONNREFUSED): is it running? (`npm start`); check --server / RELEASEGATE_SERVER",
      ],
    });
    const late = new ConnectError("the operation timed out", Code.DeadlineExceeded);
    expect(failureOf(late, "http://h:1").lines[0]).toContain("server unreachable at http://h:1 (timed out)");
  });

  it("a configuration error is 2, one line per variable", () => {
    expect(failureOf(new ConfigError(["DATA_DIR: bad", "PORT: bad"]))).toEqual({
      exitCode: 2,
      lines: ["config error: DATA_DIR: bad", "config error: PORT: bad"],
    });
  });
});
