import { Command, Option } from "commander";
import {
  CreateWebhookResponseSchema,
  DeleteWebhookResponseSchema,
  ListWebhookDeliveriesResponseSchema,
  ListWebhooksResponseSchema,
  RedeliverWebhookDeliveryResponseSchema,
  UpdateWebhookResponseSchema,
  type Webhook,
  type WebhookDelivery,
  WebhookDeliveryStatus,
  WebhookFormat,
  WebhookService,
} from "../gen/releasegate/v1/webhook_pb.js";
import { rpcAction } from "./context.js";

interface OrgOption {
  org: string;
}

const orgOption = (cmd: Command) => cmd.requiredOption("--org <organisation>", "organisation, e.g. acme");

const STATUS_NAMES: Record<WebhookDeliveryStatus, string> = {
  [WebhookDeliveryStatus.UNSPECIFIED]: "-",
  [WebhookDeliveryStatus.PENDING]: "pending",
  [WebhookDeliveryStatus.DELIVERED]: "delivered",
  [WebhookDeliveryStatus.FAILED_RETRYING]: "failed_retrying",
  [WebhookDeliveryStatus.DEAD]: "dead",
};

function webhookRows(hooks: readonly Webhook[]): string[][] {
  return [
    ["ID", "URL", "FORMAT", "PROJECT", "ENVIRONMENT", "KINDS", "ENABLED"],
    ...hooks.map((h) => [
      h.id,
      h.url,
      h.format === WebhookFormat.SLACK ? "slack" : "json",
      h.project || "*",
      h.environment || "*",
      h.eventKinds.join(","),
      h.enabled ? "yes" : "no",
    ]),
  ];
}

function deliveryRows(deliveries: readonly WebhookDelivery[]): string[][] {
  return [
    ["ID", "EVENT", "KIND", "STATUS", "ATTEMPTS", "CODE", "NEXT ATTEMPT", "LAST ERROR"],
    ...deliveries.map((d) => [
      d.id,
      d.eventId,
      d.kind,
      STATUS_NAMES[d.status],
      String(d.attempts),
      d.lastStatusCode === 0 ? "-" : String(d.lastStatusCode),
      d.nextAttemptAt || "-",
      d.lastError || "-",
    ]),
  ];
}

/** `releasegate webhooks create|list|enable|disable|delete|deliveries|redeliver` (organisation admins). */
export function webhooksCommand(): Command {
  const webhooks = new Command("webhooks").description(
    "webhook and Slack subscriptions to approval events, and their delivery logs (organisation admins)",
  );

  orgOption(webhooks.command("create <url>").description("subscribe a URL to events"))
    .requiredOption("--kinds <kinds>", "comma-separated event kinds, e.g. approval.decided,approval.break_glass")
    .addOption(new Option("--format <format>", "payload format").choices(["json", "slack"]).default("json"))
    .addOption(
      new Option("--secret <secret>", "signing secret, at least 16 characters (env RELEASEGATE_WEBHOOK_SECRET)")
        .env("RELEASEGATE_WEBHOOK_SECRET")
        .makeOptionMandatory(),
    )
    .option("--project <project>", "only this project's events")
    .option("--environment <environment>", "only this environment's events")
    .action(
      rpcAction(
        async (
          ctx,
          url: string,
          o: OrgOption & { kinds: string; format: string; secret: string; project?: string; environment?: string },
        ) => {
          const res = await ctx.client(WebhookService).createWebhook({
            organisation: o.org,
            project: o.project ?? "",
            environment: o.environment ?? "",
            url,
            eventKinds: o.kinds
              .split(",")
              .map((k) => k.trim())
              .filter((k) => k !== ""),
            format: o.format === "slack" ? WebhookFormat.SLACK : WebhookFormat.JSON,
            secret: o.secret,
          });
          ctx.print(CreateWebhookResponseSchema, res, () => webhookRows(res.webhook === undefined ? [] : [res.webhook]));
        },
      ),
    );

  orgOption(webhooks.command("list").description("list subscriptions (never their secrets)")).action(
    rpcAction(async (ctx, o: OrgOption) => {
      const res = await ctx.client(WebhookService).listWebhooks({ organisation: o.org });
      ctx.print(ListWebhooksResponseSchema, res, () => webhookRows(res.webhooks));
    }),
  );

  for (const [name, enabled] of [
    ["enable", true],
    ["disable", false],
  ] as const)
    orgOption(webhooks.command(`${name} <id>`).description(`${name} a subscription`)).action(
      rpcAction(async (ctx, id: string, o: OrgOption) => {
        const res = await ctx.client(WebhookService).updateWebhook({ organisation: o.org, id, enabled });
        ctx.print(UpdateWebhookResponseSchema, res, () => webhookRows(res.webhook === undefined ? [] : [res.webhook]));
      }),
    );

  orgOption(webhooks.command("delete <id>").description("delete a subscription and its delivery log")).action(
    rpcAction(async (ctx, id: string, o: OrgOption) => {
      const res = await ctx.client(WebhookService).deleteWebhook({ organisation: o.org, id });
      ctx.print(DeleteWebhookResponseSchema, res, () => [[`deleted webhook ${id}`]]);
    }),
  );

  orgOption(webhooks.command("deliveries <id>").description("a subscription's delivery log, newest first"))
    .option("--page-size <n>", "deliveries per page (1-500)", "100")
    .option("--page-token <token>", "next_page_token of the previous page")
    .action(
      rpcAction(async (ctx, id: string, o: OrgOption & { pageSize: string; pageToken?: string }) => {
        const res = await ctx.client(WebhookService).listWebhookDeliveries({
          organisation: o.org,
          subscriptionId: id,
          pageSize: Number(o.pageSize),
          pageToken: o.pageToken ?? "",
        });
        ctx.print(ListWebhookDeliveriesResponseSchema, res, () => [
          ...deliveryRows(res.deliveries),
          ...(res.nextPageToken === "" ? [] : [[`more: --page-token ${res.nextPageToken}`]]),
        ]);
      }),
    );

  orgOption(webhooks.command("redeliver <id> <delivery>").description("send a dead delivery again")).action(
    rpcAction(async (ctx, id: string, delivery: string, o: OrgOption) => {
      const res = await ctx
        .client(WebhookService)
        .redeliverWebhookDelivery({ organisation: o.org, subscriptionId: id, deliveryId: delivery });
      ctx.print(RedeliverWebhookDeliveryResponseSchema, res, () => deliveryRows(res.delivery === undefined ? [] : [res.delivery]));
    }),
  );
  return webhooks;
}
