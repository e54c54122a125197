import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApprovalPolicy, registerIntent, waitFor } from "./support/approval-fixtures.js";
import { buildPage, launchBrowser, newPerson } from "./support/browser.js";
import { OidcProviderFixture } from "./support/oidc-provider.js";
import { startTestServer, type TestServer } from "./support/server.js";

// A browser scenario is a few page loads and RPCs each bounded by PAGE_TIMEOUT_MS; on a loaded 2-core machine the whole may take a minute.
vi.setConfig({ testTimeout: 90_000 });

const CLIENT_ID = "releasegate-ui";
const project = { organisation: "acme", project: "web" };

const idp = new OidcProviderFixture({
  ada: { username: "Ada", orgRoles: { acme: "admin" } },
  dana: { username: "Dana", orgRoles: { acme: "member" }, groups: ["sre"] },
});
let server: TestServer;
let browser: Browser;
let built: Awaited<ReturnType<typeof buildPage>>;
/** The release the scenarios share, and Dana's signed-in page (sign-out continues from it). */
let intent: string;
let danaPage: Page;

beforeAll(async () => {
  built = await buildPage();
  await idp.listen();
  // The server verifies the page's ID tokens with the provider's keys; the test's HS256 secret is off.
  server = await startTestServer({
    uiDir: built.dir,
    env: {
      RELEASEGATE_JWT_SECRET: "",
      RELEASEGATE_JWKS_URL: idp.jwksUrl,
      RELEASEGATE_JWT_ISSUER: idp.issuer,
      RELEASEGATE_JWT_AUDIENCE: CLIENT_ID,
      RELEASEGATE_OIDC_ISSUER: idp.issuer,
      RELEASEGATE_OIDC_CLIENT_ID: CLIENT_ID,
    },
  });
  idp.register({ clientId: CLIENT_ID, redirectUri: `${server.baseUrl}/ui/` });
  browser = await launchBrowser();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await idp.stop();
  built?.dispose();
});

/** Signs in through the provider's own login (and, the first time, consent) screens. */
async function signIn(page: Page, login: string, username: string): Promise<void> {
  await page.goto(`${server.baseUrl}/ui/`);
  await page.getByRole("button", { name: "Sign in with single sign-on" }).click();
  await page.waitForURL((url) => url.href.startsWith(idp.issuer));
  await page.locator("input[name=login]").fill(login);
  await page.locator("input[name=password]").fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  const consent = page.getByRole("button", { name: "Continue" });
  await page.waitForURL((url) => url.href.startsWith(server.baseUrl) || url.pathname.startsWith("/interaction"));
  if (page.url().startsWith(idp.issuer)) await consent.click();
  await page.waitForURL((url) => url.href.startsWith(`${server.baseUrl}/ui/`));
  await page.locator("#who .user").filter({ hasText: username }).waitFor();
}

/** The exp claim of the token the page keeps, in ms. */
async function tokenExpiryMs(page: Page): Promise<number> {
  const tok = String(await page.evaluate("sessionStorage.getItem('releasegate.token')"));
  const claims = JSON.parse(Buffer.from(tok.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp: number };
  return claims.exp * 1000;
}

describe("single sign-on with OpenID Connect", () => {
  it("publishes the issuer and client id in /ui/config.json and allows the issuer in connect-src", async () => {
    const res = await fetch(`${server.baseUrl}/ui/config.json`);
    expect(await res.json()).toEqual({ oidc: { issuer: idp.issuer, clientId: CLIENT_ID }, localMode: false });
    expect(res.headers.get("content-security-policy")).toContain(`connect-src 'self' ${idp.issuer};`);
  });

  it("signs in with code + PKCE; the server accepts the ID token and its claims (Dana's vote is recorded)", async () => {
    // An admin signs in the same way; the page's token then sets the project up over the API.
    const ada = await newPerson(browser);
    await signIn(ada, "ada", "Ada");
    const adaToken = String(await ada.evaluate("sessionStorage.getItem('releasegate.token')"));
    await ada.context().close();
    await createApprovalPolicy(server, adaToken, project, "one-approval", "prod", 1);
    intent = await registerIntent(server, adaToken, project);

    const dana = await newPerson(browser);
    await signIn(dana, "dana", "Dana");
    // The provider's code and state left the address bar.
    expect(new URL(dana.url()).search).toBe("");
    await dana.goto(`${server.baseUrl}/ui/#/release/${intent}?org=acme&project=web`);
    const prod = dana.getByRole("region", { name: "prod" });
    await prod.getByRole("button", { name: "Approve" }).click();
    await prod.locator(".votes li", { hasText: "Dana" }).waitFor();
    await expect.poll(() => prod.locator(".overall").textContent()).toBe("Overall: passed");
    danaPage = dana;
  });

  it("signs out: the session is gone here and at the provider", async () => {
    const dana = danaPage;
    await dana.getByRole("button", { name: "Sign out" }).click();
    await dana.waitForURL((url) => url.href.startsWith(idp.issuer));
    await dana.getByRole("button", { name: "Yes, sign me out" }).click();
    await dana.waitForURL((url) => url.href.startsWith(`${server.baseUrl}/ui/`));
    await dana.getByRole("heading", { name: "Sign in" }).waitFor();
    expect(await dana.evaluate("sessionStorage.getItem('releasegate.token')")).toBeNull();
    // The provider forgot the session too: signing in asks for the login again.
    await dana.getByRole("button", { name: "Sign in with single sign-on" }).click();
    await dana.locator("input[name=login]").waitFor();
    await dana.context().close();
  });

  it("an expired sign-in goes back through the provider and lands where the person was going", async () => {
    idp.idTokenTtlSeconds = 4;
    try {
      const dana = await newPerson(browser);
      await signIn(dana, "dana", "Dana");
      const firstExpiry = await tokenExpiryMs(dana);
      // The next token lives long: exactly one more pass through the provider is expected.
      idp.idTokenTtlSeconds = 600;
      const before = idp.authorizations;
      await waitFor(() => (Date.now() > firstExpiry ? true : undefined), 10_000, "the ID token to expire");
      await dana.goto(`${server.baseUrl}/ui/#/release/${intent}?org=acme&project=web`);
      // No error page: the page went to the provider (which still knows Dana) and came back.
      await dana.getByRole("heading", { level: 1, name: "Release 1.0.0" }).waitFor();
      expect(idp.authorizations).toBe(before + 1);
      expect(await tokenExpiryMs(dana)).toBeGreaterThan(firstExpiry);
      await dana.locator("#who .user").filter({ hasText: "Dana" }).waitFor();
      await dana.context().close();
    } finally {
      idp.idTokenTtlSeconds = 600;
    }
  });
});
