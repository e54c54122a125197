import { Command } from "commander";
import { BreakGlassResponseSchema, BreakGlassService } from "../gen/releasegate/v1/break_glass_pb.js";
import { type ProjectFields, projectOption, rpcAction } from "./context.js";

interface BreakGlassOptions {
  project: ProjectFields;
  intent: string;
  env: string;
  reason: string;
}

/** `releasegate break-glass`: an organisation admin opens one intent's approval gate, with a reason. */
export function breakGlassCommand(): Command {
  return projectOption(
    new Command("break-glass").description(
      "emergency (organisation admins): every approval policy of the intent and environment passes; soak and branch still apply; recorded, published and counted",
    ),
  )
    .requiredOption("-i, --intent <id>", "release intent id")
    .requiredOption("-e, --env <env>", "target environment")
    .requiredOption("-r, --reason <text>", "why the gate cannot wait (at least 10 characters; kept in the history)")
    .action(
      rpcAction(async (ctx, o: BreakGlassOptions) => {
        const res = await ctx.client(BreakGlassService).breakGlass({
          project: o.project,
          releaseIntentId: o.intent,
          targetEnvironment: o.env,
          reason: o.reason,
        });
        ctx.print(BreakGlassResponseSchema, res, () => [
          ["RECORDED AT", res.recordedAt],
          ["EVENT", res.eventId],
        ]);
      }),
    );
}
