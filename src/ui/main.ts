import { createApi, describeError } from "./api.js";
import { completeSignIn, type OidcSettings, signOut, startSignIn } from "./auth/oidc.js";
import { clear, current, isExpired, rememberReturn, takeTokenFromFragment } from "./auth/session.js";
import { h, replace } from "./dom.js";
import type { Screen, ScreenContext } from "./screen.js";
import { countPending, inboxScreen } from "./screens/inbox.js";
import { policiesScreen } from "./screens/policies.js";
import { releaseScreen } from "./screens/release.js";

/** /ui/config.json, written by the server from its configuration. */
interface UiSettings {
  readonly oidc?: OidcSettings;
  readonly localMode: boolean;
}

const SCREENS: Record<string, Screen> = {
  inbox: inboxScreen,
  release: releaseScreen,
  policies: policiesScreen,
};

const main = document.getElementById("main")!;
const who = document.getElementById("who")!;
const badge = document.getElementById("badge")!;

/** The screen for people who are not signed in: a button to the identity provider and/or how to get a local link. */
function showSignIn(settings: UiSettings, problem?: string): void {
  replace(who);
  const parts: HTMLElement[] = [h("h1", {}, "Sign in")];
  if (problem !== undefined) parts.push(h("p", { class: "error", role: "alert" }, problem));
  if (settings.oidc !== undefined) {
    const button = h("button", { type: "button", class: "primary" }, "Sign in with single sign-on");
    button.addEventListener("click", () => void startSignIn(settings.oidc!, location.hash));
    parts.push(button);
  }
  parts.push(
    h(
      "p",
      { class: "muted" },
      settings.oidc === undefined ? "Ask for a sign-in link: on the server's machine run " : "Or, on a local-mode server, run ",
      h("code", {}, "releasegate ui --sub <your id> --org <org>=member"),
      " and open the link it prints.",
    ),
  );
  replace(main, ...parts);
}

async function boot(): Promise<void> {
  const settings = (await (await fetch("config.json", { cache: "no-cache" })).json()) as UiSettings;
  takeTokenFromFragment();
  if (settings.oidc !== undefined) {
    try {
      const returned = await completeSignIn(settings.oidc);
      const fresh = current();
      // A token already expired on arrival would send the person round in circles: say so instead.
      if (returned !== undefined && fresh !== undefined && isExpired(fresh))
        throw new Error("the identity provider issued a token that has already expired (is this computer's clock right?)");
    } catch (err) {
      clear();
      showSignIn(settings, `Sign-in did not complete: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
  }
  // A screen makes several calls at once; each finds the expired token. Only the
  // first starts the sign-in: a second would overwrite the first's PKCE verifier
  // and state and send a second authorization request after it.
  let signingIn: Promise<never> | undefined;
  const signInAgain = (): Promise<never> => {
    signingIn ??= (async (): Promise<never> => {
      clear();
      if (settings.oidc !== undefined) return startSignIn(settings.oidc, location.hash);
      rememberReturn(location.hash);
      showSignIn(settings, "Your sign-in has expired. Ask for a new sign-in link.");
      return new Promise<never>(() => {});
    })();
    return signingIn;
  };
  const session = current();
  if (session === undefined) {
    showSignIn(settings);
    return;
  }
  if (isExpired(session)) {
    await signInAgain();
    return;
  }
  const api = createApi(signInAgain);
  const ctx: ScreenContext = {
    api,
    identity: session.identity,
    setBadge: (count) => {
      badge.hidden = count === undefined || count === 0;
      badge.textContent = count === undefined ? "" : String(count);
      badge.setAttribute("aria-label", `${count ?? 0} pending`);
    },
  };
  const out = h("button", { type: "button", class: "link" }, "Sign out");
  out.addEventListener("click", () => {
    void signOut(settings.oidc).then(() => showSignIn(settings));
  });
  const roles = Object.entries(session.identity.orgRoles).map(([org, role]) => `${org}: ${role}`).join(", ");
  replace(who, h("span", { class: "user", title: roles }, session.identity.username), " ", out);

  let leave: () => void = () => {};
  let visit = 0;
  const route = async () => {
    // A sign-in link opened in a tab that is already signed in: take its token and start afresh as that person.
    if (location.hash.startsWith("#token=")) {
      takeTokenFromFragment();
      location.reload();
      return;
    }
    leave();
    leave = () => {};
    const mine = ++visit;
    // Each visit renders into its own container: a screen still loading when the
    // person moves on writes into a detached node, never over the next screen.
    const view = h("div");
    replace(main, view);
    const hash = location.hash.replace(/^#\/?/, "");
    const [pathPart = "", queryPart = ""] = hash.split("?", 2);
    const [name = "inbox", ...rest] = pathPart.split("/");
    const screen = SCREENS[name] ?? inboxScreen;
    let done: () => void = () => {};
    try {
      done = await screen(ctx, view, { path: rest.map(decodeURIComponent).join("/"), query: new URLSearchParams(queryPart) });
    } catch (err) {
      replace(view, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, describeError(err)));
    }
    if (mine !== visit) {
      done();
      return;
    }
    leave = done;
    main.focus();
  };
  window.addEventListener("hashchange", () => void route());
  await route();
  countPending(api, Object.keys(session.identity.orgRoles)).then(ctx.setBadge, () => ctx.setBadge(undefined));
}

boot().catch((err: unknown) => {
  replace(main, h("h1", {}, "releasegate"), h("p", { class: "error", role: "alert" }, `The page could not start: ${describeError(err)}`));
});
