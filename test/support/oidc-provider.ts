import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

/** A person the identity provider knows: signs in with this id as login (any password). */
export interface OidcAccount {
  readonly username: string;
  readonly orgRoles: Record<string, string>;
  readonly groups?: readonly string[];
}

export interface OidcClientRegistration {
  readonly clientId: string;
  /** The page's address, /ui/ on the releasegate server: the redirect URI and the post-logout one. */
  readonly redirectUri: string;
}

/**
 * A real OpenID Connect provider (panva's certified oidc-provider 9) on
 * 127.0.0.1, port 0: authorization code with PKCE for a public client, its
 * development login and consent screens, signed ID tokens carrying
 * preferred_username, org_roles and groups, a JWKS endpoint, RP-initiated
 * logout. Started in two steps because the issuer must be known before the
 * releasegate server starts and the client's redirect URI only after.
 */
export class OidcProviderFixture {
  readonly #accounts: Record<string, OidcAccount>;
  #server?: Server;
  #handler?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Lifetime of the ID tokens issued from now on, in seconds. */
  idTokenTtlSeconds = 600;
  /** Authorization requests received (each pass through sign-in). */
  authorizations = 0;

  constructor(accounts: Record<string, OidcAccount>) {
    this.#accounts = accounts;
  }

  get issuer(): string {
    const port = (this.#server?.address() as AddressInfo | null)?.port;
    if (port === undefined) throw new Error("provider not listening");
    return `http://127.0.0.1:${port}`;
  }

  get jwksUrl(): string {
    return `${this.issuer}/jwks`;
  }

  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      // "/auth?…" is an authorization request; "/auth/<uid>" resumes one after the login screens.
      if ((req.url ?? "").startsWith("/auth?")) this.authorizations += 1;
      if (this.#handler === undefined) {
        res.writeHead(503).end("provider not configured yet");
        return;
      }
      this.#handler(req, res);
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  }

  /** Registers the page as a public client and starts answering. */
  register(client: OidcClientRegistration): void {
    const accounts = this.#accounts;
    const provider = new Provider(this.issuer, {
      clients: [
        {
          client_id: client.clientId,
          client_name: "releasegate",
          token_endpoint_auth_method: "none",
          application_type: "web",
          grant_types: ["authorization_code"],
          response_types: ["code"],
          redirect_uris: [client.redirectUri],
          post_logout_redirect_uris: [client.redirectUri],
        },
      ],
      pkce: { required: () => true },
      // The claims releasegate reads, in the ID token itself (not only from userinfo).
      claims: { openid: ["sub"], profile: ["preferred_username", "org_roles", "groups"] },
      conformIdTokenClaims: false,
      cookies: { keys: ["releasegate-test-cookie-key-0123456789"] },
      ttl: { IdToken: () => this.idTokenTtlSeconds },
      features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
      findAccount: (_ctx, id) => {
        const account = accounts[id];
        if (account === undefined) return undefined;
        return {
          accountId: id,
          claims: () => ({
            sub: id,
            preferred_username: account.username,
            org_roles: account.orgRoles,
            groups: [...(account.groups ?? [])],
          }),
        };
      },
    });
    // Its development warnings (dev interactions, generated keys) are expected in a test.
    provider.on("server_error", (...args: unknown[]) => console.error("oidc-provider:", args[1]));
    this.#handler = provider.callback();
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
