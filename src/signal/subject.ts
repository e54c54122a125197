/** Core NATS subject Forest's coordinator listens on; payload: the bare release intent id. */
export const FOREST_EVALUATE_SUBJECT = "forest.intent.evaluate";

const SAFE = /^[A-Za-z0-9_-]$/;

/**
 * Makes a name usable as one NATS subject token, deterministically and
 * injectively: every UTF-8 byte outside [A-Za-z0-9_-] becomes `%XX`
 * (so `my.app` → `my%2Eapp`, `a b` → `a%20b`, `*` → `%2A`, `%` → `%25`).
 */
export function subjectToken(name: string): string {
  let out = "";
  for (const ch of name) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, "utf8")) out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `<prefix>.<org>.<project>.<env>` with each name made a safe token. */
export function approvalSubject(prefix: string, organisation: string, project: string, environment: string): string {
  return [prefix, subjectToken(organisation), subjectToken(project), subjectToken(environment)].join(".");
}
