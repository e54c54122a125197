import { lookup as dnsLookup } from "node:dns";
import * as http from "node:http";
import * as https from "node:https";
import type { LookupFunction } from "node:net";
import { hostOf, isPublicAddress } from "./address-policy.js";

/** One outbound POST of a delivery. */
export interface PostRequest {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Whole attempt (DNS, connect, TLS, answer), in ms. */
  readonly timeoutMs: number;
  /** Most response bytes read (the rest is dropped with the connection). */
  readonly maxResponseBytes: number;
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: http:// and non-public addresses allowed. */
  readonly allowPrivateNetworks: boolean;
  /** Aborts the attempt (worker stopping). */
  readonly signal?: AbortSignal;
}

/** The outcome of one attempt. `statusCode` is absent when no HTTP answer came. */
export type PostOutcome =
  | { readonly ok: true; readonly statusCode: number }
  | { readonly ok: false; readonly statusCode?: number; readonly error: string; readonly aborted?: boolean };

/** Characters of a receiver's error body kept in the delivery log. */
const ERROR_BODY_CHARS = 200;

/** The error code a refused destination carries. */
export const DESTINATION_REFUSED = "ERR_WEBHOOK_DESTINATION_REFUSED";

class DestinationRefusedError extends Error {
  readonly code = DESTINATION_REFUSED;
}

/**
 * A DNS lookup that resolves every address of the host and refuses the host
 * when any of them is not public. The socket connects to the address this
 * returns, so a name cannot resolve to a public address for a check and to a
 * private one for the connection (DNS rebinding).
 */
export function publicOnlyLookup(): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, family: options.family, hints: options.hints }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const refused = addresses.find((a) => !isPublicAddress(a.address));
      if (refused !== undefined || addresses.length === 0)
        return callback(
          new DestinationRefusedError(
            `destination ${hostname} resolves to ${refused?.address ?? "no address"}, a non-public address: refused (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)`,
          ),
          "",
          0,
        );
      if (options.all) return (callback as (e: null, a: typeof addresses) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}

/**
 * POSTs a delivery: no redirects (a 3xx is a failure), the whole attempt
 * bounded by `timeoutMs`, at most `maxResponseBytes` of the answer read, no
 * connection reuse, and, unless private networks are allowed, https only
 * and only to public addresses (IP literals checked here, names at lookup).
 */
export function safePost(req: PostRequest): Promise<PostOutcome> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      return resolve({ ok: false, error: "the subscription's URL does not parse" });
    }
    const secure = url.protocol === "https:";
    if (!secure && !(req.allowPrivateNetworks && url.protocol === "http:"))
      return resolve({ ok: false, error: `${url.protocol} refused: https only (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)` });
    const { host, literal } = hostOf(url);
    if (!req.allowPrivateNetworks && literal && !isPublicAddress(host))
      return resolve({ ok: false, error: `destination ${host} is a non-public address: refused (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)` });
    let settled = false;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
      request.destroy();
      resolve(outcome);
    };
    const send = secure ? https.request : http.request;
    const request = send(url, {
      method: "POST",
      headers: { ...req.headers, "content-length": String(Buffer.byteLength(req.body)) },
      agent: false,
      lookup: req.allowPrivateNetworks ? undefined : publicOnlyLookup(),
    });
    const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${req.timeoutMs} ms` }), req.timeoutMs);
    const onAbort = () => finish({ ok: false, error: "attempt aborted: the worker is stopping", aborted: true });
    req.signal?.addEventListener("abort", onAbort);
    if (req.signal?.aborted) return onAbort();
    request.on("error", (err: NodeJS.ErrnoException) =>
      finish({ ok: false, error: err.code === DESTINATION_REFUSED ? err.message : `${err.code ?? "error"}: ${err.message}` }),
    );
    request.on("response", (res: http.IncomingMessage) => {
      const statusCode = res.statusCode ?? 0;
      if (statusCode >= 200 && statusCode < 300) return finish({ ok: true, statusCode });
      if (statusCode >= 300 && statusCode < 400)
        return finish({ ok: false, statusCode, error: `redirect ${statusCode} not followed (answer 2xx at the subscribed URL)` });
      const chunks: Buffer[] = [];
      let size = 0;
      const fail = () =>
        finish({
          ok: false,
          statusCode,
          error: `HTTP ${statusCode}${size > 0 ? `: ${Buffer.concat(chunks).toString("utf8").slice(0, ERROR_BODY_CHARS)}` : ""}`,
        });
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= req.maxResponseBytes) fail();
      });
      res.on("end", fail);
      res.on("error", fail);
    });
    request.end(req.body);
  });
}
