import { DEFAULT_PORT } from "../config.js";
import { CliError, EXIT } from "./exit-codes.js";

/** Default server address: the server's default port on this machine. */
export const DEFAULT_SERVER = `http://127.0.0.1:${DEFAULT_PORT}`;

/** The port that means TLS when an address has no scheme. */
const HTTPS_PORT = "443";

/**
 * Turns what a person types into the base URL the transport needs:
 * `localhost:50051` → `http://localhost:50051`, `rg.example.com:443` →
 * `https://rg.example.com`, `rg.example.com` → `http://rg.example.com:50051`
 * (the server's default port); a URL with http(s) stays as it is (without a
 * trailing slash). Anything else is a usage error naming `source` (the flag,
 * variable or file it came from).
 */
export function parseServerAddress(value: string, source: string): string {
  const trimmed = value.trim();
  const bad = (why: string) =>
    new CliError(
      `${source} ${JSON.stringify(value)}: ${why}; expected HOST:PORT or http(s)://HOST:PORT, e.g. localhost:${DEFAULT_PORT}`,
      EXIT.usage,
    );
  if (trimmed === "") throw bad("empty server address");
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed);
  let url: URL;
  try {
    url = new URL(hasScheme ? trimmed : `http://${trimmed}`);
  } catch {
    throw bad("not a server address");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw bad(`unsupported scheme ${url.protocol.slice(0, -1)}`);
  if (url.hostname === "") throw bad("no host");
  if (url.username !== "" || url.password !== "") throw bad("credentials do not belong in the address (use --token)");
  if (url.search !== "" || url.hash !== "") throw bad("no query or fragment allowed");
  if (!hasScheme) {
    // `new URL` drops a port equal to the scheme's default, so 443 must be read from the text.
    const port = /:(\d+)(?:\/|$)/.exec(trimmed.replace(/^\[[^\]]*\]/, ""))?.[1];
    if (port === HTTPS_PORT) {
      url = new URL(`https://${trimmed}`);
    } else if (port === undefined) {
      url.port = String(DEFAULT_PORT);
    }
  }
  return url.href.replace(/\/+$/, "");
}
