/**
 * The signed-in person: a bearer token kept in sessionStorage (per tab, gone
 * when the tab closes), how it was obtained, and what its claims say. The
 * claims are read only to label the page (name, roles, expiry); the server
 * verifies the token on every call.
 */
const TOKEN_KEY = "releasegate.token";
const SOURCE_KEY = "releasegate.source";
const RETURN_KEY = "releasegate.return";

/** "local": a link from `releasegate ui`; "oidc": the identity provider's ID token. */
export type TokenSource = "local" | "oidc";

export interface Identity {
  readonly sub: string;
  readonly username: string;
  /** Organisation → role (member, maintainer, admin). */
  readonly orgRoles: Readonly<Record<string, string>>;
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
}

export interface Session {
  readonly token: string;
  readonly source: TokenSource;
  readonly identity: Identity;
}

function decodeClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split(".")[1];
  if (part === undefined) return undefined;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const claims: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function identityOf(token: string): Identity | undefined {
  const c = decodeClaims(token);
  if (c === undefined || typeof c.sub !== "string" || typeof c.exp !== "number") return undefined;
  const roles: Record<string, string> = {};
  if (typeof c.org_roles === "object" && c.org_roles !== null)
    for (const [org, role] of Object.entries(c.org_roles)) if (typeof role === "string") roles[org] = role;
  const username = typeof c.preferred_username === "string" && c.preferred_username !== "" ? c.preferred_username : c.sub;
  return { sub: c.sub, username, orgRoles: roles, exp: c.exp };
}

export function store(token: string, source: TokenSource): void {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(SOURCE_KEY, source);
}

export function clear(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SOURCE_KEY);
}

/** The stored sign-in, whether or not it has expired; undefined when there is none or it is unreadable. */
export function current(): Session | undefined {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token === null) return undefined;
  const identity = identityOf(token);
  if (identity === undefined) return undefined;
  return { token, source: sessionStorage.getItem(SOURCE_KEY) === "oidc" ? "oidc" : "local", identity };
}

/** True once the token's exp has passed (a call that races the expiry gets UNAUTHENTICATED, handled the same way). */
export function isExpired(s: Session, nowMs = Date.now()): boolean {
  return s.identity.exp * 1000 <= nowMs;
}

/**
 * A link from `releasegate ui` carries the token in the fragment
 * (`#token=<jwt>&next=<route>`), which never reaches a server log: move it
 * into sessionStorage and take it out of the address bar and history.
 * Returns the route to show next, or undefined when the fragment has no token.
 */
export function takeTokenFromFragment(): string | undefined {
  if (!location.hash.startsWith("#token=")) return undefined;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token") ?? "";
  const next = params.get("next") ?? "#/inbox";
  history.replaceState(null, "", `${location.pathname}${next.startsWith("#") ? next : `#${next}`}`);
  if (identityOf(token) === undefined) return undefined;
  store(token, "local");
  return next;
}

/** Remembers where the person was, to come back after a round trip through sign-in. */
export function rememberReturn(hash: string): void {
  sessionStorage.setItem(RETURN_KEY, hash);
}

export function takeReturn(): string {
  const hash = sessionStorage.getItem(RETURN_KEY) ?? "#/inbox";
  sessionStorage.removeItem(RETURN_KEY);
  return hash;
}
