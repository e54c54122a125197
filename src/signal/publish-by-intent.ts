import type { OutboxRow } from "../db/outbox.repository.js";

/** What publishing one claimed batch did. */
export interface IntentPublishResult {
  /** Rows that reached JetStream: exactly the ones to mark published. */
  readonly published: OutboxRow[];
  /** One error per intent that stopped at a failed row; its later rows were not tried. */
  readonly failures: unknown[];
  /** Rows not tried because `mayStart` said no (the claim's lease is running out); not failures. */
  readonly untried: number;
}

/**
 * Publishes `rows` (in outbox order) grouped by release intent: each
 * intent's rows one after another, awaiting each publish, so they reach
 * JetStream in commit order; up to `concurrency` intents at a time, since
 * only per-intent order is promised. An intent whose publish fails stops
 * there (a later row must not overtake it); the other intents carry on.
 * No publish starts once `mayStart` returns false: the rest stay untried.
 */
export async function publishByIntent(
  rows: readonly OutboxRow[],
  publish: (row: OutboxRow) => Promise<void>,
  concurrency: number,
  mayStart: () => boolean = () => true,
): Promise<IntentPublishResult> {
  const byIntent = new Map<string, OutboxRow[]>();
  for (const row of rows) {
    const queue = byIntent.get(row.releaseIntentId);
    if (queue === undefined) byIntent.set(row.releaseIntentId, [row]);
    else queue.push(row);
  }
  const queues = [...byIntent.values()];
  const published: OutboxRow[] = [];
  const failures: unknown[] = [];
  let untried = 0;
  let next = 0;
  const worker = async () => {
    for (let queue = queues[next++]; queue !== undefined; queue = queues[next++]) {
      for (const [i, row] of queue.entries()) {
        if (!mayStart()) {
          untried += queue.length - i;
          break;
        }
        try {
          await publish(row);
        } catch (err) {
          failures.push(err);
          break;
        }
        published.push(row);
      }
    }
  };
  const workers = Math.max(1, Math.min(concurrency, queues.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { published, failures, untried };
}
