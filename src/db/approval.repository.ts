import type { Kysely, Transaction } from "kysely";
import type { Decision, DecisionKind, Vote } from "../approval/vote.js";
import type { DB } from "./schema.js";

type Db = Kysely<DB> | Transaction<DB>;

/** Current votes for an intent in one environment, in the order first cast. */
export async function listCurrentVotes(db: Db, releaseIntentId: string, environment: string): Promise<Vote[]> {
  const rows = await db
    .selectFrom("approval_votes")
    .select(["user_id", "username", "decision", "decision_kind", "decided_at", "comment"])
    .where("release_intent_id", "=", releaseIntentId)
    .where("environment", "=", environment)
    .orderBy("first_cast_seq")
    .execute();
  return rows.map((r) => ({
    userId: r.user_id,
    username: r.username,
    decision: r.decision as Decision,
    decisionKind: r.decision_kind as DecisionKind,
    decidedAt: r.decided_at,
    ...(r.comment !== null ? { comment: r.comment } : {}),
  }));
}
