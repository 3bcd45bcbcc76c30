import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { newId } from "../ids.ts";
import type { ClaimedDelivery, QueuedRef } from "./outbox.ts";
import { ALERT_EVENT, type AlertPayload } from "./payloads.ts";

/**
 * Storm digests for destinations people read (Slack, email): when more than `digest_after` alerts wait for
 * one destination, they go out as one message instead of a flood at one a second. The digest is a delivery
 * of its own (retried as one, in the history like any other) whose body carries the first alerts in full and
 * the ids of all; each alert it carried is `delivered` with its `digest_id`.
 */

/** The event type of a digest delivery; internal: destinations do not subscribe to it, their alerts make it. */
export const DIGEST_EVENT = "escalation.digest";
/** `digest_after` when a destination sets none. */
export const DEFAULT_DIGEST_AFTER = 10;
/** Alerts a digest message lists in full; the rest are counted. */
export const DIGEST_LISTED = 20;
/** Most alerts one digest carries, so one statement stays small; a bigger storm makes several digests. */
export const DIGEST_MAX = 500;

/** What a digest delivery's frozen body holds. */
export interface DigestPayload {
  digest: true;
  /** How many alerts it carried. */
  count: number;
  /** The first {@link DIGEST_LISTED} of them, oldest first, as their alert bodies. */
  alerts: AlertPayload[];
  /** Names of the automations that made the listed alerts, by id. */
  automations: Record<string, string>;
  /** Every delivery it carried, oldest first. */
  delivery_ids: string[];
}

/**
 * With `claimed` (an alert whose attempt is about to start) and more than `digestAfter` alerts waiting for its
 * destination, gathers them (claimed included; at most {@link DIGEST_MAX}) into a new digest delivery, marks
 * them delivered by it and returns the digest to queue. Returns undefined when there is no storm: the alert
 * goes out by itself. Alerts another worker is sending right now are left alone.
 */
export async function formDigest(
  db: Db,
  claimed: ClaimedDelivery,
  digestAfter: number,
  maxAttempts: number,
): Promise<{ digest: QueuedRef; carried: { id: string; generation: number }[] } | undefined> {
  if (claimed.eventType !== ALERT_EVENT) return undefined;
  const [waiting] = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from (
      select 1 from deliveries
      where webhook_id = ${claimed.webhookId} and status = 'pending' and event_type = ${ALERT_EVENT}
      limit ${digestAfter + 1}) w`);
  if ((waiting?.n ?? 0) <= digestAfter) return undefined;
  return db
    .transaction(async (tx) => {
      const digestId = newId("del");
      const carried = await tx.execute<{
        id: string;
        generation: number;
        payload: string;
        created_at: string;
        automation_name: string | null;
      }>(sql`
      with picked as (
        select id from deliveries
        where webhook_id = ${claimed.webhookId} and status = 'pending' and event_type = ${ALERT_EVENT}
          and (id = ${claimed.id} or leased_until is null or leased_until <= now())
        order by created_at, id
        limit ${DIGEST_MAX}
        for update skip locked)
      update deliveries d set status = 'delivered', delivered_at = now(), digest_id = ${digestId},
        leased_until = null, claim_token = null, last_error = null
      from picked
      where d.id = picked.id and (d.claim_token is null or d.id = ${claimed.id})
      returning d.id, d.generation, d.payload, d.created_at::text as created_at,
        (select a.name from automations a where a.id = d.automation_id) as automation_name`);
      if (carried.length <= 1) {
        // Another worker took the rest meanwhile: this alert goes out by itself after all.
        throw new NoStorm();
      }
      const key = (r: { created_at: string; id: string }) => `${r.created_at}|${r.id}`;
      const ordered = [...carried].sort((a, b) => (key(a) < key(b) ? -1 : 1));
      const listed = ordered.slice(0, DIGEST_LISTED);
      const body: DigestPayload = {
        digest: true,
        count: carried.length,
        alerts: listed.map((r) => JSON.parse(r.payload) as AlertPayload),
        automations: Object.fromEntries(
          listed.flatMap((r) => {
            const a = JSON.parse(r.payload) as AlertPayload;
            return r.automation_name ? [[a.automation_id, r.automation_name]] : [];
          }),
        ),
        delivery_ids: ordered.map((r) => r.id),
      };
      const [digest] = await tx.execute<{ id: string; webhook_id: string; generation: number }>(sql`
      insert into deliveries (id, org_id, webhook_id, event_type, idempotency_key, payload, status, max_attempts)
      values (${digestId}, ${claimed.orgId}, ${claimed.webhookId}, ${DIGEST_EVENT}, ${`digest:${digestId}`},
        ${JSON.stringify(body)}, 'pending', ${maxAttempts})
      returning id, webhook_id, generation`);
      if (!digest) throw new Error("digest insert returned no row");
      return {
        digest: { id: digest.id, webhookId: digest.webhook_id, generation: digest.generation, delayMs: 0 },
        carried: ordered.map((r) => ({ id: r.id, generation: r.generation })),
      };
    })
    .catch((err: unknown) => {
      if (err instanceof NoStorm) return undefined;
      throw err;
    });
}

/** Rolls back a digest that would carry only the alert that started it. */
class NoStorm extends Error {
  override name = "NoStorm";
}
