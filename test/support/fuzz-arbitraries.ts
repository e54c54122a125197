import { randomUUID } from "node:crypto";
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import fc from "fast-check";

/** Strings that have broken SQL builders, parsers and loggers before. */
export const HOSTILE_STRINGS: readonly string[] = [
  "'; DROP TABLE policies; --",
  "\" OR 1=1 --",
  "' OR '1'='1",
  "$$; DROP TABLE approval_votes; $$",
  "\\",
  "\\\\'\\\"",
  "%s%s%s%n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style probe, literally
  "${jndi:ldap://x}",
  "../../etc/passwd",
  "Ünïcödé – ☃ – 🚀 – 漢字 – עברית",
  "\u202eevil",
  "a.b c>*",
  "\u0000",
  "line\nbreak",
  "\ud800",
];

const INVALID_UUIDS = [
  "not-a-uuid",
  "00000000-0000-0000-0000-00000000000g",
  "00000000000000000000000000000000",
  "{00000000-0000-0000-0000-000000000000}",
  "00000000-0000-0000-0000-0000000000000",
  " 00000000-0000-0000-0000-000000000000",
  "-1",
];

/** Organisation/project names the fuzzed caller has a role in (so validation goes deep). */
export const FUZZ_PROJECT = { organisation: "acme", project: "fuzz" } as const;

const plausible = fc.constantFrom(
  "acme",
  "fuzz",
  "prod",
  "staging",
  "main",
  "release/1.0",
  "approval-prod",
  "soak-prod",
  "api@1.4.2",
  "approved",
  "rejected",
);

/** A string arbitrary biased towards the interesting: valid, empty, huge, hostile, malformed. */
export function hostileString(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: plausible },
    { weight: 2, arbitrary: fc.constant("") },
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
    { weight: 2, arbitrary: fc.constantFrom(...INVALID_UUIDS) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.constant(randomUUID().toUpperCase()) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom("a", "é", "🚀", "'"), fc.integer({ min: 201, max: 120_000 }))
        .map(([c, n]) => c.repeat(n)),
    },
  );
}

const INT32 = [0, 1, -1, 2, 3, 100, 101, 2147483647, -2147483648];
const INT64 = [0n, 1n, -1n, 60n, 315360000n, 315360001n, 9223372036854775807n, -9223372036854775808n, 9007199254740993n];

function scalarArbitrary(t: ScalarType): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return hostileString();
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.constantFrom(...INT32), fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.constantFrom(0, 1, 4294967295), fc.nat());
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.constantFrom(...INT64), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
  }
}

function fieldArbitrary(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
      return scalarArbitrary(field.scalar);
    case "enum": {
      const known = field.enum.values.map((v) => v.number);
      // proto3 enums are open: unknown numbers must be answered, not crash.
      return fc.oneof(fc.constantFrom(...known), fc.integer({ min: -3, max: 1000 }), fc.constant(2147483647));
    }
    case "message":
      return field.message.typeName === "forest.v1.Project"
        ? projectArbitrary()
        : messageArbitrary(field.message, depth + 1);
    case "list":
      return fc.constant([]);
    case "map":
      return fc.constant({});
  }
}

/** Mostly the fuzz project (so requests get past the first check); sometimes missing, empty or hostile. */
function projectArbitrary(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant<unknown>({ ...FUZZ_PROJECT }) },
    { weight: 1, arbitrary: fc.constant<unknown>({}) },
    { weight: 1, arbitrary: fc.constant<unknown>(undefined) },
    {
      weight: 2,
      arbitrary: fc.record({ organisation: hostileString(), project: hostileString() }, { requiredKeys: [] }),
    },
  );
}

/**
 * A random init object for any message, driven by its descriptor: every field
 * may be absent, every oneof may pick any case, `forest.v1.Project` fields
 * come from projectArbitrary.
 */
export function messageArbitrary(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  if (depth > 3) return fc.constant({});
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) {
    if (field.oneof !== undefined) continue;
    parts[field.localName] = fieldArbitrary(field, depth);
  }
  for (const oneof of desc.oneofs) {
    parts[oneof.localName] = fc.oneof(
      fc.constant({ case: undefined }),
      ...oneof.fields.map((f) => fieldArbitrary(f, depth).map((value) => ({ case: f.localName, value }))),
    );
  }
  // Fields that a message has: the project first, so most cases have it.
  const required = desc.fields.some((f) => f.localName === "project") ? ["project"] : [];
  return fc.record(parts, { requiredKeys: required }) as fc.Arbitrary<Record<string, unknown>>;
}
