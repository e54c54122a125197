import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { Caller } from "../auth/caller.js";
import type { Clock } from "../clock.js";
import type { DB } from "../db/schema.js";
import {
  deleteSubscription,
  findDelivery,
  findSubscription,
  insertSubscription,
  listDeliveries,
  listSubscriptions,
  redeliverDead,
  setSubscriptionEnabled,
  type WebhookDelivery,
  type WebhookSubscription,
} from "../db/webhook.repository.js";
import { FailedPreconditionError, NotFoundError, quoteInput } from "../errors.js";
import type { WebhookSpec } from "./validate-webhook.js";

export interface ManageWebhooksDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Called when a delivery became due again (wakes this replica's worker). */
  readonly onDeliveryDue?: () => void;
}

/** A page of the delivery log. */
export interface DeliveryPage {
  readonly deliveries: readonly WebhookDelivery[];
  /** The id to continue before; undefined on the last page. */
  readonly nextBeforeId?: string;
}

const notFound = (organisation: string, id: string) =>
  new NotFoundError(`webhook ${quoteInput(id)} not found in organisation ${organisation}: list them with ListWebhooks`);

/**
 * The subscription use cases (callers are authorised organisation admins).
 * Each is one statement, so none opens a transaction of its own.
 */
export function createManageWebhooks(deps: ManageWebhooksDeps) {
  const { db, clock } = deps;

  async function requireSubscription(organisation: string, id: string): Promise<WebhookSubscription> {
    const s = await findSubscription(db, organisation, id);
    if (s === undefined) throw notFound(organisation, id);
    return s;
  }

  return {
    create(caller: Caller, spec: WebhookSpec): Promise<WebhookSubscription> {
      return insertSubscription(db, { ...spec, id: randomUUID(), createdBy: caller.userId, createdAt: clock.now() });
    },

    list(organisation: string): Promise<WebhookSubscription[]> {
      return listSubscriptions(db, organisation);
    },

    async setEnabled(organisation: string, id: string, enabled: boolean): Promise<WebhookSubscription> {
      const s = await setSubscriptionEnabled(db, organisation, id, enabled, clock.now());
      if (s === undefined) throw notFound(organisation, id);
      if (enabled) deps.onDeliveryDue?.();
      return s;
    },

    async remove(organisation: string, id: string): Promise<void> {
      if (!(await deleteSubscription(db, organisation, id))) throw notFound(organisation, id);
    },

    async deliveries(organisation: string, id: string, page: { beforeId?: string; limit: number }): Promise<DeliveryPage> {
      await requireSubscription(organisation, id);
      const rows = await listDeliveries(db, id, { beforeId: page.beforeId, limit: page.limit + 1 });
      const more = rows.length > page.limit;
      const deliveries = more ? rows.slice(0, page.limit) : rows;
      return { deliveries, nextBeforeId: more ? deliveries.at(-1)?.id : undefined };
    },

    async redeliver(organisation: string, id: string, deliveryId: string): Promise<WebhookDelivery> {
      await requireSubscription(organisation, id);
      const redone = await redeliverDead(db, id, deliveryId);
      if (redone !== undefined) {
        deps.onDeliveryDue?.();
        return redone;
      }
      const existing = await findDelivery(db, id, deliveryId);
      if (existing === undefined)
        throw new NotFoundError(`delivery ${quoteInput(deliveryId)} not found for webhook ${id}: list them with ListWebhookDeliveries`);
      throw new FailedPreconditionError(
        "delivery_id",
        `delivery ${deliveryId} is ${existing.status}, not dead: only a dead delivery is sent again (a pending or retrying one is still being tried)`,
      );
    },
  };
}

export type ManageWebhooks = ReturnType<typeof createManageWebhooks>;
