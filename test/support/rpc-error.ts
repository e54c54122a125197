import { type Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** Awaits a call that must fail; returns its ConnectError. */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/**
 * Asserts a call fails with `code` and a message equal to `message` (string)
 * or matching it (RegExp). Returns the error for further checks.
 */
export async function expectRpcError(
  call: Promise<unknown>,
  code: Code,
  message: string | RegExp,
): Promise<ConnectError> {
  const err = await rpcError(call);
  expect({ code: err.code, message: err.rawMessage }).toEqual({
    code,
    message: typeof message === "string" ? message : expect.stringMatching(message),
  });
  return err;
}
