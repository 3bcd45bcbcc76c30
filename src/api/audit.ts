import type { FastifyRequest } from "fastify";
import { type Change, recordChange } from "../audit/log.ts";
import type { Executor } from "../db/client.ts";
import { adminOf } from "./auth.ts";

/**
 * Records a change made by this admin request: its organization, key and referenceID. Call it in the
 * transaction that makes the change, so the two commit together.
 */
export function audit(db: Executor, request: FastifyRequest, change: Change): Promise<void> {
  const { orgId, keyId } = adminOf(request);
  return recordChange(db, { orgId, keyId, referenceId: String(request.id) }, change);
}

/**
 * {@link audit} for one kind of target: `auditTarget("webhook")(tx, request, "updated", id, before, after)`
 * records `webhook.updated`.
 */
export function auditTarget(targetType: string) {
  return (
    db: Executor,
    request: FastifyRequest,
    verb: string,
    targetId: string,
    before: unknown,
    after: unknown,
  ) => audit(db, request, { action: `${targetType}.${verb}`, targetType, targetId, before, after });
}
