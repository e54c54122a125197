import { describe, expect, it } from "vitest";
import {
  ENVIRONMENT_NAME_PATTERN,
  foldEnvironment,
  isEnvironmentName,
  optionalEnvironment,
  requireEnvironment,
} from "../../src/environment/environment-name.js";
import { InvalidArgumentError } from "../../src/errors.js";

function invalid(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error("expected InvalidArgumentError");
}

const RULE =
  "use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit (names are case-insensitive)";

describe("foldEnvironment", () => {
  it("lowercases ASCII A-Z", () => {
    expect(foldEnvironment("Prod")).toBe("prod");
    expect(foldEnvironment("PROD")).toBe("prod");
    expect(foldEnvironment("EU-West_1.Staging")).toBe("eu-west_1.staging");
  });

  it("leaves everything else exactly as it is (no trimming, no Unicode folding)", () => {
    for (const s of [" prod", "prod ", "prod\u200b", "pr\u043ed", "ＰＲＯＤ", "ｐｒｏｄ", "PRÖD", "\u0130stanbul", "K\u212a"]) {
      const folded = foldEnvironment(s);
      // Only the ASCII capitals changed.
      expect(folded).toBe(s.replace(/[A-Z]/g, (c) => c.toLowerCase()));
    }
    expect(foldEnvironment("PRÖD")).toBe("prÖd");
    // The Kelvin sign is not an ASCII K: it is not folded into "k".
    expect(foldEnvironment("\u212a8s")).toBe("\u212a8s");
    expect(foldEnvironment("")).toBe("");
  });

  it("is idempotent", () => {
    for (const s of ["Prod", "a.B_c-D", "ＰＲＯＤ", "x"]) expect(foldEnvironment(foldEnvironment(s))).toBe(foldEnvironment(s));
  });
});

describe("requireEnvironment", () => {
  it("folds case, so Prod and PROD mean prod", () => {
    expect(requireEnvironment("Prod", "target_environment")).toBe("prod");
    expect(requireEnvironment("PROD", "target_environment")).toBe("prod");
    expect(requireEnvironment("prod", "target_environment")).toBe("prod");
  });

  it("accepts the documented alphabet: letters, digits, '.', '_', '-' after a letter or digit", () => {
    for (const s of ["a", "0", "dev", "staging-2", "eu.west_1", "1prod", "a-", "a.", "a_", "x".repeat(63), "a-b.c_d-9"])
      expect(requireEnvironment(s, "environment")).toBe(s);
  });

  it("says a required field is required when empty", () => {
    const e = invalid(() => requireEnvironment("", "environment"));
    expect(e.field).toBe("environment");
    expect(e.message).toBe("environment: is required");
    expect(invalid(() => requireEnvironment(undefined, "target_environment")).message).toBe(
      "target_environment: is required",
    );
  });

  it("rejects a trailing space with the spec's message", () => {
    const e = invalid(() => requireEnvironment("prod ", "target_environment"));
    expect(e.field).toBe("target_environment");
    expect(e.message).toBe(`target_environment: "prod " is not a valid environment name: ${RULE}`);
  });

  const LOOK_ALIKES: Array<[string, string, string]> = [
    ["leading space", " prod", '" prod"'],
    ["trailing space", "prod ", '"prod "'],
    ["zero-width space", "prod\u200b", '"prod\\u200b"'],
    ["Cyrillic о", "pr\u043ed", '"pr\\u043ed"'],
    ["full-width ｐｒｏｄ", "ｐｒｏｄ", '"\\uff50\\uff52\\uff4f\\uff44"'],
    ["full-width capitals", "ＰＲＯＤ", '"\\uff30\\uff32\\uff2f\\uff24"'],
    ["tab", "prod\t", '"prod\\t"'],
    ["newline", "prod\n", '"prod\\n"'],
    ["NUL", "prod\u0000", '"prod\\u0000"'],
    ["DEL", "prod\u007f", '"prod\\u007f"'],
    ["C1 control", "prod\u0085", '"prod\\u0085"'],
    ["non-breaking space", "prod\u00a0", '"prod\\u00a0"'],
    ["zero-width joiner", "pr\u200dod", '"pr\\u200dod"'],
    ["byte order mark", "\ufeffprod", '"\\ufeffprod"'],
    ["right-to-left override", "prod\u202e", '"prod\\u202e"'],
    ["dotless i", "prod\u0131", '"prod\\u0131"'],
    ["Kelvin sign", "\u212a8s", '"\\u212a8s"'],
    ["emoji", "prod\u{1f680}", '"prod\\ud83d\\ude80"'],
    ["combining accent", "prode\u0301", '"prode\\u0301"'],
  ];

  for (const [what, value, shown] of LOOK_ALIKES)
    it(`rejects a look-alike: ${what}`, () => {
      const e = invalid(() => requireEnvironment(value, "target_environment"));
      expect(e.field).toBe("target_environment");
      expect(e.message).toBe(`target_environment: ${shown} is not a valid environment name: ${RULE}`);
    });

  const MALFORMED: Array<[string, string]> = [
    ["64 characters", "x".repeat(64)],
    ["starting with '.'", ".x"],
    ["starting with '-'", "-x"],
    ["starting with '_'", "_x"],
    ["only a dot", "."],
    ["a slash", "prod/eu"],
    ["a colon", "prod:1"],
    ["a star (NATS wildcard)", "prod*"],
    ["a '>' (NATS wildcard)", "prod>"],
    ["a quote", 'pr"od'],
    ["a backslash", "pr\\od"],
    ["an inner space", "pr od"],
    ["only spaces", "   "],
    ["a plus", "prod+1"],
    ["a percent sign", "prod%20"],
  ];

  for (const [what, value] of MALFORMED)
    it(`rejects a name with ${what}`, () => {
      const e = invalid(() => requireEnvironment(value, "environment"));
      expect(e.field).toBe("environment");
      expect(e.message).toMatch(/^environment: ".*" is not a valid environment name: /);
      expect(e.message.endsWith(RULE)).toBe(true);
    });

  it("shows quotes and backslashes escaped in the message", () => {
    expect(invalid(() => requireEnvironment('pr"od', "environment")).message).toContain('"pr\\"od"');
    expect(invalid(() => requireEnvironment("pr\\od", "environment")).message).toContain('"pr\\\\od"');
  });

  it("accepts 63 characters after folding and rejects 64", () => {
    expect(requireEnvironment("P".repeat(63), "environment")).toBe("p".repeat(63));
    invalid(() => requireEnvironment("P".repeat(64), "environment"));
  });

  it("repeats at most 80 characters of a very long name in the message", () => {
    const e = invalid(() => requireEnvironment("a".repeat(10_000), "environment"));
    expect(e.message).toBe(`environment: "${"a".repeat(80)}"... (10000 characters) is not a valid environment name: ${RULE}`);
  });
});

describe("optionalEnvironment", () => {
  it("returns undefined for an empty or absent filter", () => {
    expect(optionalEnvironment("", "target_environment")).toBeUndefined();
    expect(optionalEnvironment(undefined, "target_environment")).toBeUndefined();
  });

  it("folds and validates a given filter", () => {
    expect(optionalEnvironment("Prod", "target_environment")).toBe("prod");
    const e = invalid(() => optionalEnvironment(" ", "target_environment"));
    expect(e.message).toBe(`target_environment: " " is not a valid environment name: ${RULE}`);
    invalid(() => optionalEnvironment("prod\u200b", "target_environment"));
  });
});

describe("ENVIRONMENT_NAME_PATTERN and isEnvironmentName", () => {
  it("is the documented pattern", () => {
    expect(ENVIRONMENT_NAME_PATTERN.source).toBe("^[a-z0-9][a-z0-9._-]{0,62}$");
  });

  it("matches folded names only; isEnvironmentName folds first", () => {
    expect(ENVIRONMENT_NAME_PATTERN.test("Prod")).toBe(false);
    expect(isEnvironmentName("Prod")).toBe(true);
    expect(isEnvironmentName("prod ")).toBe(false);
    expect(isEnvironmentName("")).toBe(false);
  });

  it("agrees with requireEnvironment on every single character", () => {
    for (let code = 0; code < 0x3000; code++) {
      const c = String.fromCharCode(code);
      const accepted = /[a-zA-Z0-9]/.test(c);
      expect(isEnvironmentName(c), `U+${code.toString(16)}`).toBe(accepted);
      if (accepted) expect(requireEnvironment(c, "e")).toBe(c.toLowerCase());
      else expect(() => requireEnvironment(c, "e")).toThrow(InvalidArgumentError);
      // After a valid first character, '.', '_' and '-' are allowed too.
      expect(isEnvironmentName(`a${c}`), `a + U+${code.toString(16)}`).toBe(accepted || /[._-]/.test(c));
    }
  });
});
