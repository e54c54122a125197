import { createRequire } from "node:module";

// ipaddr.js is CommonJS with `export =` typings; without esModuleInterop a default import does not type-check.
const ipaddr = createRequire(import.meta.url)("ipaddr.js") as typeof import("ipaddr.js");
type IPv6 = ReturnType<typeof ipaddr.IPv6.parse>;

/**
 * ipaddr.js range names a webhook may reach without
 * WEBHOOK_ALLOW_PRIVATE_NETWORKS: only the public internet. Everything else
 * (loopback, private, link-local, unspecified, carrier-grade NAT, multicast,
 * reserved, unique-local, IPv4-mapped private ...) is refused.
 */
const PUBLIC_RANGE = "unicast";

/**
 * True when `address` (an IPv4 or IPv6 literal) is a public unicast
 * address. IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4
 * address it carries. Anything that does not parse is not public.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6" && (parsed as IPv6).isIPv4MappedAddress())
    parsed = (parsed as IPv6).toIPv4Address();
  return parsed.range() === PUBLIC_RANGE;
}

/**
 * The host of a WHATWG URL without IPv6 brackets or a trailing dot
 * (`localhost.` is `localhost`), and whether it is an IP literal.
 */
export function hostOf(url: URL): { host: string; literal: boolean } {
  const bare = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const host = bare.endsWith(".") ? bare.slice(0, -1) : bare;
  return { host, literal: ipaddr.isValid(host) };
}
