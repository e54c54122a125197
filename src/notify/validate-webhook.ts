import { foldEnvironment, requireEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError, quoteInput } from "../errors.js";
import { requireName } from "../policy/validate.js";
import { hostOf, isPublicAddress } from "./address-policy.js";
import { WEBHOOK_EVENT_KINDS } from "./event-kinds.js";
import type { WebhookFormatName } from "./payload.js";

/** Shortest accepted signing secret, in characters. */
export const WEBHOOK_SECRET_MIN = 16;
/** Longest accepted signing secret, in characters. */
export const WEBHOOK_SECRET_MAX = 512;
/** Longest accepted URL, in characters. */
export const WEBHOOK_URL_MAX = 2048;

/** A subscription to create, validated. */
export interface WebhookSpec {
  readonly organisation: string;
  readonly project?: string;
  readonly environment?: string;
  readonly url: string;
  readonly eventKinds: readonly string[];
  readonly format: WebhookFormatName;
  readonly secret: string;
}

/** The create request's fields as they come off the wire ("" = absent). */
export interface WebhookSpecInput {
  readonly organisation: string;
  readonly project: string;
  readonly environment: string;
  readonly url: string;
  readonly eventKinds: readonly string[];
  readonly format: WebhookFormatName | undefined;
  readonly secret: string;
}

/**
 * A destination URL a webhook may have: absolute, no credentials, https
 * (http only when private networks are allowed), and when the host is an IP
 * literal, a public one (unless allowed). Host names are checked again at
 * every delivery, on the addresses they resolve to then (safe-lookup.ts).
 */
export function requireWebhookUrl(value: string, allowPrivateNetworks: boolean, field = "url"): URL {
  if (value === "") throw new InvalidArgumentError(field, "is required");
  if (value.length > WEBHOOK_URL_MAX)
    throw new InvalidArgumentError(field, `must be at most ${WEBHOOK_URL_MAX} characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(field, `${quoteInput(value)} is not an absolute URL: use https://host/path`);
  }
  if (url.protocol !== "https:" && !(allowPrivateNetworks && url.protocol === "http:"))
    throw new InvalidArgumentError(
      field,
      `${quoteInput(value)} must use https:// (plain http:// only when the operator sets WEBHOOK_ALLOW_PRIVATE_NETWORKS=true)`,
    );
  if (url.username !== "" || url.password !== "")
    throw new InvalidArgumentError(field, "must not carry credentials (user:password@): sign with the secret instead");
  const { host, literal } = hostOf(url);
  if (!allowPrivateNetworks && (host === "localhost" || host.endsWith(".localhost") || (literal && !isPublicAddress(host))))
    throw new InvalidArgumentError(
      field,
      `${quoteInput(value)} points to a loopback, private, link-local or otherwise non-public address: use a public host (or the operator sets WEBHOOK_ALLOW_PRIVATE_NETWORKS=true)`,
    );
  return url;
}

/** Validates a create request; INVALID_ARGUMENT naming the field and what to do. */
export function validateWebhookSpec(input: WebhookSpecInput, allowPrivateNetworks: boolean): WebhookSpec {
  const organisation = requireName(input.organisation, "organisation");
  const project = input.project === "" ? undefined : requireName(input.project, "project");
  const environment = input.environment === "" ? undefined : requireEnvironment(input.environment, "environment");
  const url = requireWebhookUrl(input.url, allowPrivateNetworks).href;
  if (input.eventKinds.length === 0)
    throw new InvalidArgumentError("event_kinds", `name at least one of: ${WEBHOOK_EVENT_KINDS.join(", ")}`);
  const unknown = input.eventKinds.filter((k) => !WEBHOOK_EVENT_KINDS.includes(k));
  if (unknown.length > 0)
    throw new InvalidArgumentError(
      "event_kinds",
      `unknown event kind ${unknown.map(quoteInput).join(", ")}: valid kinds are ${WEBHOOK_EVENT_KINDS.join(", ")}`,
    );
  if (input.format === undefined)
    throw new InvalidArgumentError("format", "is required: WEBHOOK_FORMAT_JSON or WEBHOOK_FORMAT_SLACK");
  if (input.secret.length < WEBHOOK_SECRET_MIN)
    throw new InvalidArgumentError("secret", `must be at least ${WEBHOOK_SECRET_MIN} characters (use a random string)`);
  if (input.secret.length > WEBHOOK_SECRET_MAX)
    throw new InvalidArgumentError("secret", `must be at most ${WEBHOOK_SECRET_MAX} characters`);
  return {
    organisation,
    project,
    environment: environment === undefined ? undefined : foldEnvironment(environment),
    url,
    eventKinds: [...new Set(input.eventKinds)],
    format: input.format,
    secret: input.secret,
  };
}
