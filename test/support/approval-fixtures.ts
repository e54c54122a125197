import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { PolicyService, PolicyType } from "../../src/gen/forest/v1/policy_pb.js";
import { ReleaseService } from "../../src/gen/releasegate/v1/release_pb.js";
import { type TestServer, token } from "./server.js";

/** Tokens for the cast of the approval tests, all in organisation `acme`. */
export interface Cast {
  /** Organisation admin. */
  ada: string;
  /** Member; author of the intents `registerIntent` creates. */
  alice: string;
  bob: string;
  carol: string;
  /** Service account (pipeline). */
  pipeline: string;
  /** User with no role in acme. */
  mallory: string;
}

export async function cast(): Promise<Cast> {
  return {
    ada: await token({ sub: "ada", name: "Ada", orgs: { acme: "admin" } }),
    alice: await token({ sub: "alice", name: "Alice", orgs: { acme: "member" } }),
    bob: await token({ sub: "bob", name: "Bob", orgs: { acme: "member" } }),
    carol: await token({ sub: "carol", name: "Carol", orgs: { acme: "member" } }),
    pipeline: await token({ sub: "deploy-bot", orgs: { acme: "member" }, service: true }),
    mallory: await token({ sub: "mallory", orgs: { other: "admin" } }),
  };
}

export async function createApprovalPolicy(
  server: Pick<TestServer, "client">,
  adminToken: string,
  project: { organisation: string; project: string },
  name: string,
  targetEnvironment: string,
  requiredApprovals: number,
): Promise<void> {
  await server.client(PolicyService, adminToken).createPolicy({
    project,
    name,
    policyType: PolicyType.EXTERNAL_APPROVAL,
    config: { case: "externalApproval", value: { targetEnvironment, requiredApprovals } },
  });
}

/** Registers a release intent authored by `author` (default alice); returns its id. */
export async function registerIntent(
  server: Pick<TestServer, "client">,
  tok: string,
  project: { organisation: string; project: string },
  author = "alice",
): Promise<string> {
  const id = randomUUID();
  await server.client(ReleaseService, tok).registerReleaseIntent({
    project,
    releaseIntentId: id,
    authorUserId: author,
    branch: "main",
    version: "1.0.0",
  });
  return id;
}

/** Awaits a call that must fail; returns the ConnectError after checking its code. */
export async function expectCode(call: Promise<unknown>, code: Code, message?: RegExp | string): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err, "call should fail").toBeInstanceOf(ConnectError);
  expect(Code[err!.code]).toBe(Code[code]);
  if (message !== undefined) expect(err!.rawMessage).toMatch(message);
  return err!;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
