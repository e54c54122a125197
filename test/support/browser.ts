import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { buildUi } from "../../scripts/build-ui.js";

/** Debian's chromium (`.ci/run` installs it when missing); playwright-core downloads no browser. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Flags for a closed network, as root: no sandbox (root), no GPU, and none
 * of Chromium's background traffic (update checks, sync, QUIC probes), which
 * would only hammer refused connections here.
 */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** Bounds every wait on the page: a broken page fails the test in seconds, not at vitest's timeout. */
export const PAGE_TIMEOUT_MS = 15_000;

/** Headless Chromium, one per test file (close it in afterAll). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (what .ci/run does), or set CHROMIUM_PATH`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30_000 });
}

/** A fresh build of the page in a temporary folder; `dispose` removes it. */
export async function buildPage(): Promise<{ dir: string; dispose: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "rg-ui-"));
  await buildUi(process.cwd(), dir);
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A new page in its own browser context (own sessionStorage and cookies: another person). */
export async function newPerson(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(PAGE_TIMEOUT_MS);
  // Only this machine: pages of the identity provider @import web fonts, which must not leave it.
  await context.route(
    (url) => !LOOPBACK.test(url.hostname),
    (route) => route.abort("blockedbyclient"),
  );
  const page = await context.newPage();
  return page;
}

/** The local-mode sign-in link (what `releasegate ui` prints) for a token, opening `route`. */
export function signInUrl(baseUrl: string, token: string, route = "#/inbox"): string {
  return `${baseUrl}/ui/#${new URLSearchParams({ token, next: route })}`;
}
