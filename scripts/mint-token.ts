/**
 * Mints a token for a server in local mode (secret under DATA_DIR), or for an
 * HS256 deployment when RELEASEGATE_JWT_SECRET is set.
 *
 *   npm run token -- --sub alice --org acme=admin [--name Alice] [--service] [--ttl 12h]
 */
import { parseArgs } from "node:util";
import { mintConfiguredToken, OrgRoleError } from "../src/cli/token.js";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "local-admin" },
    name: { type: "string" },
    org: { type: "string", multiple: true, default: ["acme=admin"] },
    service: { type: "boolean", default: false },
    ttl: { type: "string", default: "12h" },
  },
});
try {
  const token = await mintConfiguredToken({ ...values, orgs: values.org });
  process.stdout.write(`${token}\n`);
} catch (err) {
  if (!(err instanceof OrgRoleError)) throw err;
  console.error(err.message);
  process.exit(2);
}
