import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { authorize } from "../auth/permissions.js";
import type { WebhookDelivery, WebhookSubscription } from "../db/webhook.repository.js";
import { InvalidArgumentError } from "../errors.js";
import {
  CreateWebhookResponseSchema,
  DeleteWebhookResponseSchema,
  ListWebhookDeliveriesResponseSchema,
  ListWebhooksResponseSchema,
  RedeliverWebhookDeliveryResponseSchema,
  UpdateWebhookResponseSchema,
  type Webhook,
  WebhookDeliverySchema,
  WebhookDeliveryStatus,
  WebhookFormat,
  WebhookSchema,
  type WebhookService,
} from "../gen/releasegate/v1/webhook_pb.js";
import { createManageWebhooks, type ManageWebhooksDeps } from "../notify/manage-webhooks.js";
import type { WebhookFormatName } from "../notify/payload.js";
import { validateWebhookSpec } from "../notify/validate-webhook.js";
import { requireName, requireUuid } from "../policy/validate.js";
import { accessOf } from "./context.js";
import { rfc3339 } from "./convert.js";

export interface WebhookServiceDeps extends ManageWebhooksDeps {
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS. */
  readonly allowPrivateNetworks: boolean;
}

/** Deliveries per page when the caller asks for none. */
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 500;
const DELIVERY_ID_RE = /^[1-9][0-9]{0,18}$/;

const FORMAT_NAMES: Partial<Record<WebhookFormat, WebhookFormatName>> = {
  [WebhookFormat.JSON]: "json",
  [WebhookFormat.SLACK]: "slack",
};

const STATUS: Record<WebhookDelivery["status"], WebhookDeliveryStatus> = {
  pending: WebhookDeliveryStatus.PENDING,
  delivered: WebhookDeliveryStatus.DELIVERED,
  failed_retrying: WebhookDeliveryStatus.FAILED_RETRYING,
  dead: WebhookDeliveryStatus.DEAD,
};

function toWebhook(s: WebhookSubscription): Webhook {
  return create(WebhookSchema, {
    id: s.id,
    organisation: s.organisation,
    project: s.project ?? "",
    environment: s.environment ?? "",
    url: s.url,
    eventKinds: [...s.eventKinds],
    format: s.format === "json" ? WebhookFormat.JSON : WebhookFormat.SLACK,
    enabled: s.enabled,
    createdAt: rfc3339(s.createdAt),
    createdBy: s.createdBy,
  });
}

function toDelivery(d: WebhookDelivery) {
  return create(WebhookDeliverySchema, {
    id: d.id,
    subscriptionId: d.subscriptionId,
    eventId: d.eventId,
    kind: d.kind,
    releaseIntentId: d.releaseIntentId,
    environment: d.environment,
    status: STATUS[d.status],
    attempts: d.attempts,
    lastError: d.lastError ?? "",
    lastStatusCode: d.lastStatusCode ?? 0,
    nextAttemptAt: d.nextAttemptAt === undefined ? "" : rfc3339(d.nextAttemptAt),
    createdAt: rfc3339(d.createdAt),
    deliveredAt: d.deliveredAt === undefined ? "" : rfc3339(d.deliveredAt),
  });
}

function requireDeliveryId(value: string, field: string): string {
  if (value === "") throw new InvalidArgumentError(field, "is required");
  if (!DELIVERY_ID_RE.test(value))
    throw new InvalidArgumentError(field, "must be a delivery id as ListWebhookDeliveries returns it");
  return value;
}

function pageSize(value: number): number {
  if (value === 0) return DEFAULT_PAGE_SIZE;
  if (value < 0 || value > MAX_PAGE_SIZE)
    throw new InvalidArgumentError("page_size", `must be from 1 to ${MAX_PAGE_SIZE} (0: ${DEFAULT_PAGE_SIZE})`);
  return value;
}

/** releasegate.v1.WebhookService: organisation admins manage subscriptions and read their delivery logs. */
export function createWebhookHandlers(deps: WebhookServiceDeps): ServiceImpl<typeof WebhookService> {
  const webhooks = createManageWebhooks(deps);
  return {
    async createWebhook(req, ctx) {
      const spec = validateWebhookSpec(
        {
          organisation: req.organisation,
          project: req.project,
          environment: req.environment,
          url: req.url,
          eventKinds: req.eventKinds,
          format: FORMAT_NAMES[req.format],
          secret: req.secret,
        },
        deps.allowPrivateNetworks,
      );
      const access = accessOf(ctx);
      await authorize(access, spec.organisation, "webhook.write");
      return create(CreateWebhookResponseSchema, { webhook: toWebhook(await webhooks.create(access.caller, spec)) });
    },
    async listWebhooks(req, ctx) {
      const organisation = requireName(req.organisation, "organisation");
      await authorize(accessOf(ctx), organisation, "webhook.read");
      return create(ListWebhooksResponseSchema, { webhooks: (await webhooks.list(organisation)).map(toWebhook) });
    },
    async updateWebhook(req, ctx) {
      const organisation = requireName(req.organisation, "organisation");
      const id = requireUuid(req.id, "id");
      await authorize(accessOf(ctx), organisation, "webhook.write");
      return create(UpdateWebhookResponseSchema, {
        webhook: toWebhook(await webhooks.setEnabled(organisation, id, req.enabled)),
      });
    },
    async deleteWebhook(req, ctx) {
      const organisation = requireName(req.organisation, "organisation");
      const id = requireUuid(req.id, "id");
      await authorize(accessOf(ctx), organisation, "webhook.write");
      await webhooks.remove(organisation, id);
      return create(DeleteWebhookResponseSchema, {});
    },
    async listWebhookDeliveries(req, ctx) {
      const organisation = requireName(req.organisation, "organisation");
      const id = requireUuid(req.subscriptionId, "subscription_id");
      const limit = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : requireDeliveryId(req.pageToken, "page_token");
      await authorize(accessOf(ctx), organisation, "webhook.read");
      const page = await webhooks.deliveries(organisation, id, { beforeId, limit });
      return create(ListWebhookDeliveriesResponseSchema, {
        deliveries: page.deliveries.map(toDelivery),
        nextPageToken: page.nextBeforeId ?? "",
      });
    },
    async redeliverWebhookDelivery(req, ctx) {
      const organisation = requireName(req.organisation, "organisation");
      const id = requireUuid(req.subscriptionId, "subscription_id");
      const deliveryId = requireDeliveryId(req.deliveryId, "delivery_id");
      await authorize(accessOf(ctx), organisation, "webhook.write");
      return create(RedeliverWebhookDeliveryResponseSchema, {
        delivery: toDelivery(await webhooks.redeliver(organisation, id, deliveryId)),
      });
    },
  };
}
