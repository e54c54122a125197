/**
 * Mints a token for a server in local mode (secret under DATA_DIR), or for an
 * HS256 deployment when RELEASEGATE_JWT_SECRET is set.
 *
 *   npm run token -- --sub alice --org acme=admin [--name Alice] [--service] [--ttl 12h]
 */
import { parseArgs } from "node:util";
import type { OrgRole } from "../src/auth/caller.js";
import { loadOrCreateLocalSecret, mintToken } from "../src/auth/token-verifier.js";
import { DEFAULT_DATA_DIR } from "../src/config.js";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "local-admin" },
    name: { type: "string" },
    org: { type: "string", multiple: true, default: ["acme=admin"] },
    service: { type: "boolean", default: false },
    ttl: { type: "string", default: "12h" },
  },
});
const orgRoles: Record<string, OrgRole> = {};
for (const pair of values.org) {
  const [org, role = "member"] = pair.split("=");
  if (!org || (role !== "member" && role !== "admin")) {
    console.error(`--org ${pair}: expected ORG=member or ORG=admin`);
    process.exit(2);
  }
  orgRoles[org] = role;
}
const secret =
  process.env.RELEASEGATE_JWT_SECRET ||
  loadOrCreateLocalSecret(process.env.DATA_DIR || DEFAULT_DATA_DIR).secret;
const token = await mintToken(secret, {
  sub: values.sub,
  username: values.name,
  orgRoles,
  actorType: values.service ? "service" : "user",
  expiresIn: values.ttl,
  issuer: process.env.RELEASEGATE_JWT_ISSUER || undefined,
  audience: process.env.RELEASEGATE_JWT_AUDIENCE || undefined,
});
process.stdout.write(`${token}\n`);
