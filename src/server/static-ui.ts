import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** The path the page is served under. */
export const UI_PATH = "/ui/";

/** What the page reads from /ui/config.json: how to sign in. */
export interface UiSettings {
  /** OpenID Connect issuer and public client id; undefined: no single sign-on (local links only). */
  readonly oidc?: { readonly issuer: string; readonly clientId: string };
  /** The server verifies tokens with its local secret (`releasegate ui` prints sign-in links). */
  readonly localMode: boolean;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** Hashed asset names (`main-3F2A1B.js`) never change content: cache them for a year. */
const IMMUTABLE = "public, max-age=31536000, immutable";
/** index.html and config.json name the current assets and settings: revalidate every time (ETag). */
const REVALIDATE = "no-cache";

/**
 * The page's Content-Security-Policy: nothing inline, nothing from elsewhere
 * except the identity provider the page talks to (discovery, token endpoint).
 */
export function contentSecurityPolicy(issuer: string | undefined): string {
  const connect = issuer === undefined ? "'self'" : `'self' ${new URL(issuer).origin}`;
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src ${connect}`,
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join("; ");
}

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
  readonly cacheControl: string;
}

function asset(body: Buffer, name: string, cacheControl: string): Asset {
  const ext = name.slice(name.lastIndexOf("."));
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  return { body, contentType: CONTENT_TYPES[ext] ?? "application/octet-stream", etag, cacheControl };
}

/**
 * The built page's folder: dist/ui beside the compiled server
 * (dist/src/server → dist/ui), or from sources (src/server → dist/ui).
 */
export function defaultUiDir(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const candidates = [join(here, "..", "..", "ui"), join(here, "..", "..", "dist", "ui")];
  return candidates.find((dir) => existsSync(join(dir, "index.html"))) ?? candidates[0]!;
}

/** Reads every file of the built page once (a few hundred KiB); a missing build serves a 503 that says what to run. */
function loadAssets(dir: string): Map<string, Asset> | undefined {
  if (!existsSync(join(dir, "index.html"))) return undefined;
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    assets.set(name, asset(readFileSync(path), name, name === "index.html" ? REVALIDATE : IMMUTABLE));
  }
  return assets;
}

export interface UiHandlerOptions {
  /** Folder with index.html and the bundles (default defaultUiDir()). */
  readonly dir?: string;
  readonly settings: UiSettings;
}

/**
 * Serves the page under /ui/ on the API port (HTTP/1.1 and HTTP/2 alike):
 * returns false for every other path, which then goes to the RPC handler.
 */
export function createUiHandler(options: UiHandlerOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const assets = loadAssets(options.dir ?? defaultUiDir());
  const csp = contentSecurityPolicy(options.settings.oidc?.issuer);
  const config = asset(Buffer.from(JSON.stringify(options.settings)), "config.json", REVALIDATE);
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    if (path !== "/ui" && !path.startsWith(UI_PATH)) return false;
    const headers: Record<string, string> = {
      "content-security-policy": csp,
      "x-content-type-options": "nosniff",
      // The sign-in callback carries the authorization code in the query: never pass it on.
      "referrer-policy": "no-referrer",
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...headers, allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("method not allowed: the page is read with GET\n");
      return true;
    }
    if (path === "/ui") {
      res.writeHead(308, { ...headers, location: UI_PATH });
      res.end();
      return true;
    }
    const name = path === UI_PATH ? "index.html" : path.slice(UI_PATH.length);
    if (assets === undefined && name !== "config.json") {
      res.writeHead(503, { ...headers, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end("the page is not built: run `npm run build` (it writes dist/ui/)\n");
      return true;
    }
    // Only names the build wrote (the map's keys): no path ever reaches the file system.
    const found = name === "config.json" ? config : assets?.get(name);
    if (found === undefined) {
      res.writeHead(404, { ...headers, "content-type": "text/plain; charset=utf-8" });
      res.end("not found\n");
      return true;
    }
    const common = { ...headers, etag: found.etag, "cache-control": found.cacheControl };
    if (req.headers["if-none-match"] === found.etag) {
      res.writeHead(304, common);
      res.end();
      return true;
    }
    res.writeHead(200, { ...common, "content-type": found.contentType, "content-length": String(found.body.length) });
    if (req.method === "HEAD") res.end();
    else res.end(found.body);
    return true;
  };
}
