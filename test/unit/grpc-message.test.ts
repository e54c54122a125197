import { describe, expect, it } from "vitest";
import { encodeGrpcMessage } from "../../src/server/grpc-message.js";

describe("encodeGrpcMessage", () => {
  it("leaves printable ASCII alone, including ':' and '/'", () => {
    expect(encodeGrpcMessage("target_environment: is required (acme/web, x=1)")).toBe(
      "target_environment: is required (acme/web, x=1)",
    );
  });

  it("escapes '%' and bytes outside printable ASCII as UTF-8", () => {
    expect(encodeGrpcMessage("100% ünï\n")).toBe("100%25 %C3%BCn%C3%AF%0A");
  });

  it("escapes a space only at either end, where header parsing would trim it", () => {
    expect(encodeGrpcMessage(" a b ")).toBe("%20a b%20");
    expect(decodeURI(encodeGrpcMessage("x "))).toBe("x ");
  });

  it("round-trips through decodeURI (grpc-js) and decodeURIComponent (connect)", () => {
    const message = "policy gone not found in acme/ünï/100% — ok?";
    expect(decodeURI(encodeGrpcMessage(message))).toBe(message);
    expect(decodeURIComponent(encodeGrpcMessage(message))).toBe(message);
  });
});
