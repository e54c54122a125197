import type { Api } from "./api.js";
import type { Identity } from "./auth/session.js";

export interface ScreenContext {
  readonly api: Api;
  readonly identity: Identity;
  /** Sets the small text in the header's badge (pending approvals); undefined hides it. */
  readonly setBadge: (count: number | undefined) => void;
}

export interface RouteParams {
  /** What follows the screen's name: `#/release/<path>`. */
  readonly path: string;
  readonly query: URLSearchParams;
}

/** A screen fills `main` and returns what to run when the person leaves it (e.g. stop live updates). */
export type Screen = (ctx: ScreenContext, main: HTMLElement, params: RouteParams) => Promise<() => void>;
