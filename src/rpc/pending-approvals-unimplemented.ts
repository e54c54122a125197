import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { ApprovalRequestService } from "../gen/releasegate/v1/approval_request_pb.js";

/**
 * Placeholder for the inbox RPCs of ApprovalRequestService until the inbox
 * lands (it replaces this file): UNIMPLEMENTED, saying so.
 */
export function createPendingApprovalsPlaceholder(): Pick<
  ServiceImpl<typeof ApprovalRequestService>,
  "listPendingApprovals" | "countPendingApprovals"
> {
  const unimplemented = (rpc: string) => async () => {
    throw new ConnectError(`${rpc} is not implemented on this server yet (the approver's inbox)`, Code.Unimplemented);
  };
  return {
    listPendingApprovals: unimplemented("ListPendingApprovals"),
    countPendingApprovals: unimplemented("CountPendingApprovals"),
  };
}
