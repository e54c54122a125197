import * as oauth from "oauth4webapi";
import { clear, current, rememberReturn, store, takeReturn } from "./session.js";

/**
 * OpenID Connect sign-in as a public client: authorization code with PKCE
 * (S256), state and nonce, through oauth4webapi. The page keeps the ID token
 * and sends it as the bearer token; the server verifies it with its JWKS
 * settings (issuer, audience = this client id, groups claim).
 */
export interface OidcSettings {
  readonly issuer: string;
  readonly clientId: string;
}

const PENDING_KEY = "releasegate.oidc.pending";
const ID_TOKEN_HINT_KEY = "releasegate.oidc.id_token";

interface Pending {
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
}

/** The page's own address is the redirect URI (registered with the identity provider). */
export function redirectUri(): string {
  return `${location.origin}${location.pathname}`;
}

function isLoopback(url: URL): boolean {
  return url.hostname === "localhost" || url.hostname === "[::1]" || /^127\./.test(url.hostname);
}

/** oauth4webapi refuses http: allowed here only for an issuer on this machine (as the server allows for JWKS). */
function requestOptions(issuer: URL): { [oauth.allowInsecureRequests]?: boolean } {
  return issuer.protocol === "http:" && isLoopback(issuer) ? { [oauth.allowInsecureRequests]: true } : {};
}

async function discover(settings: OidcSettings): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(settings.issuer);
  const response = await oauth.discoveryRequest(issuer, { algorithm: "oidc", ...requestOptions(issuer) });
  return oauth.processDiscoveryResponse(issuer, response);
}

/** Leaves for the identity provider; comes back to the page with `?code=…&state=…`. */
export async function startSignIn(settings: OidcSettings, returnTo = location.hash): Promise<never> {
  const as = await discover(settings);
  if (as.authorization_endpoint === undefined) throw new Error("the identity provider names no authorization endpoint");
  const pending: Pending = {
    verifier: oauth.generateRandomCodeVerifier(),
    state: oauth.generateRandomState(),
    nonce: oauth.generateRandomNonce(),
  };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  rememberReturn(returnTo === "" ? "#/inbox" : returnTo);
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("client_id", settings.clientId);
  url.searchParams.set("redirect_uri", redirectUri());
  url.searchParams.set("response_type", "code");
  url.searchParams.set("scope", "openid profile");
  url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(pending.verifier));
  url.searchParams.set("code_challenge_method", "S256");
  url.searchParams.set("state", pending.state);
  url.searchParams.set("nonce", pending.nonce);
  location.assign(url.href);
  // Navigation is under way; nothing after this runs.
  return new Promise<never>(() => {});
}

/**
 * On the way back from the identity provider (`?code=` or `?error=` in the
 * address): exchanges the code for tokens, keeps the ID token, clears the
 * query from the address bar, and returns the route to show. Undefined when
 * this is no callback.
 */
export async function completeSignIn(settings: OidcSettings): Promise<string | undefined> {
  const here = new URL(location.href);
  if (!here.searchParams.has("code") && !here.searchParams.has("error")) return undefined;
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const returnTo = takeReturn();
  history.replaceState(null, "", `${location.pathname}${returnTo}`);
  if (raw === null) throw new Error("this sign-in was not started from this tab: sign in again");
  const pending = JSON.parse(raw) as Pending;
  const as = await discover(settings);
  const client: oauth.Client = { client_id: settings.clientId };
  const params = oauth.validateAuthResponse(as, client, here, pending.state);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.None(),
    params,
    redirectUri(),
    pending.verifier,
    requestOptions(new URL(settings.issuer)),
  );
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: pending.nonce,
    requireIdToken: true,
  });
  if (result.id_token === undefined) throw new Error("the identity provider returned no ID token");
  store(result.id_token, "oidc");
  sessionStorage.setItem(ID_TOKEN_HINT_KEY, result.id_token);
  return returnTo;
}

/** Forgets the sign-in; ends the provider's session too when it offers an end-session endpoint. */
export async function signOut(settings: OidcSettings | undefined): Promise<void> {
  const signedIn = current();
  const hint = sessionStorage.getItem(ID_TOKEN_HINT_KEY) ?? signedIn?.token;
  clear();
  sessionStorage.removeItem(ID_TOKEN_HINT_KEY);
  if (settings === undefined || signedIn?.source !== "oidc") return;
  let as: oauth.AuthorizationServer;
  try {
    as = await discover(settings);
  } catch {
    return;
  }
  if (as.end_session_endpoint === undefined) return;
  const url = new URL(as.end_session_endpoint);
  if (hint !== undefined) url.searchParams.set("id_token_hint", hint);
  url.searchParams.set("client_id", settings.clientId);
  url.searchParams.set("post_logout_redirect_uri", redirectUri());
  location.assign(url.href);
  await new Promise<never>(() => {});
}
