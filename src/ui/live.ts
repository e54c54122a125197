import { Code, ConnectError } from "@connectrpc/connect";
import type { ApprovalEvent } from "../gen/releasegate/v1/approval_pb.js";
import type { Api } from "./api.js";
import type { ProjectRef } from "./screens/release-data.js";

export interface WatchHandlers {
  readonly onEvent: (event: ApprovalEvent) => void;
  /** "live", "reconnecting in 2 s", … for the person to see. */
  readonly onState: (state: string) => void;
  /** The stream could not resume where it stopped (OUT_OF_RANGE): reread everything. */
  readonly onResync: () => void;
}

/** First wait after a dropped stream; doubles up to BACKOFF_MAX_MS. */
export const BACKOFF_START_MS = 500;
export const BACKOFF_MAX_MS = 15_000;

/**
 * Follows WatchApprovalEvents for a project (Connect server streaming over
 * fetch). A dropped stream reconnects with exponential backoff and resumes
 * after the last event it delivered (resume_after_event_id; events may come
 * twice and are deduplicated by id). Returns a function that stops watching.
 */
export function watchProject(api: Api, project: ProjectRef, handlers: WatchHandlers): () => void {
  const abort = new AbortController();
  let lastEventId = "";
  const seen = new Set<string>();
  let backoff = BACKOFF_START_MS;
  let dropped = false;
  const loop = async () => {
    while (!abort.signal.aborted) {
      try {
        const stream = api.audit.watchApprovalEvents(
          { project, resumeAfterEventId: lastEventId },
          { signal: abort.signal },
        );
        for await (const msg of stream) {
          if (msg.subscribed) {
            handlers.onState("live");
            backoff = BACKOFF_START_MS;
            // Back after a drop with no event to resume after: what happened meanwhile is only in a reread.
            if (dropped && lastEventId === "") handlers.onResync();
            dropped = false;
          }
          const event = msg.event;
          if (event === undefined || seen.has(event.eventId)) continue;
          seen.add(event.eventId);
          lastEventId = event.eventId;
          handlers.onEvent(event);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        const code = ConnectError.from(err).code;
        if (code === Code.OutOfRange) {
          // Too far behind to replay: start afresh and reread the page.
          lastEventId = "";
          handlers.onResync();
        }
      }
      if (abort.signal.aborted) return;
      dropped = true;
      handlers.onState(`reconnecting in ${Math.round(backoff / 100) / 10} s`);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  };
  void loop();
  return () => abort.abort();
}
