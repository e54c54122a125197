/**
 * Mints a token for a server in local mode (its secret under DATA_DIR, never
 * created here), or for an HS256 deployment when RELEASEGATE_JWT_SECRET is
 * set; says on stderr which key signed it. Same as `releasegate token`.
 *
 *   npm run token -- --sub alice --org acme=admin [--name Alice] [--service] [--ttl 12h] [--secret-file PATH]
 */
import { parseArgs } from "node:util";
import { failureOf } from "../src/cli/exit-codes.js";
import { mintFromOptions } from "../src/cli/token.js";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "local-admin" },
    name: { type: "string" },
    org: { type: "string", multiple: true, default: [] },
    service: { type: "boolean", default: false },
    ttl: { type: "string", default: "12h" },
    "secret-file": { type: "string" },
  },
});
try {
  const token = await mintFromOptions({ ...values, secretFile: values["secret-file"] });
  process.stdout.write(`${token}\n`);
} catch (err) {
  const failure = failureOf(err);
  for (const line of failure.lines) console.error(line);
  process.exit(failure.exitCode);
}
