/**
 * The gate-safety test's calls to issue 11's `releasegate.v1.EnvironmentService`
 * (declared environments), kept apart so that the rest of the test does not
 * depend on the generated client the envs branch adds.
 */
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { EnvironmentService } from "../../src/gen/releasegate/v1/environment_pb.js";
import type { ProjectRef } from "./model-commands.js";

const clients = new WeakMap<Transport, Client<typeof EnvironmentService>>();

function client(transport: Transport): Client<typeof EnvironmentService> {
  let c = clients.get(transport);
  if (c === undefined) {
    c = createClient(EnvironmentService, transport);
    clients.set(transport, c);
  }
  return c;
}

/** SetProjectEnvironments; answers the stored list. */
export async function setProjectEnvironments(
  transport: Transport,
  project: ProjectRef,
  environments: readonly string[],
): Promise<{ environments: string[] }> {
  const res = await client(transport).setProjectEnvironments({ project, environments: [...environments] });
  return { environments: res.environments };
}

/** GetProjectEnvironments. */
export async function getProjectEnvironments(
  transport: Transport,
  project: ProjectRef,
): Promise<{ environments: string[]; declared: boolean }> {
  const res = await client(transport).getProjectEnvironments({ project });
  return { environments: res.environments, declared: res.declared };
}
