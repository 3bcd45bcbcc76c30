import { and, eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { keysetPage, type Page, type PageOf } from "../db/paging.ts";
import { type DestinationKind, webhooks } from "../db/schema.ts";
import { newId } from "../ids.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";
import { newSigningSecret, notDeleted } from "./store.ts";

/**
 * Destinations of the kinds other than webhooks (Slack, email), stored beside them: one outbox, one health,
 * one history for every kind. What a kind keeps: a `shown` address (a Slack URL masked, an email's
 * `mailto:`), an optional `secret` sealed like a credential (a Slack URL), and `settings` (recipients).
 */

export type OtherKind = Exclude<DestinationKind, "webhook">;

export interface DestinationInput {
  name?: string | null;
  /** What the API and operational events show as its address. */
  shown: string;
  /** Sealed, never shown again. */
  secret?: string;
  settings?: unknown;
  events: string[];
  enabled?: boolean;
  rateLimitPerSecond?: number | null;
  digestAfter?: number | null;
}

export interface DestinationView {
  id: string;
  name: string | null;
  shown: string;
  settings: unknown;
  events: string[];
  enabled: boolean;
  rateLimitPerSecond: number | null;
  digestAfter: number | null;
  disabledReason: string | null;
  failingSince: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const PREFIX = { slack: "slk", email: "eml" } as const;

const columns = {
  id: webhooks.id,
  name: webhooks.name,
  shown: webhooks.url,
  settings: webhooks.settings,
  events: webhooks.events,
  enabled: webhooks.enabled,
  rateLimitPerSecond: webhooks.rateLimitPerSecond,
  digestAfter: webhooks.digestAfter,
  disabledReason: webhooks.disabledReason,
  failingSince: webhooks.failingSince,
  createdAt: webhooks.createdAt,
  updatedAt: webhooks.updatedAt,
};

const ofOrg = (orgId: string, kind: OtherKind) =>
  and(eq(webhooks.orgId, orgId), eq(webhooks.kind, kind), notDeleted);

/** Creates a destination of `kind`; its secret is sealed at once. */
export async function createDestination(
  db: Executor,
  box: SecretBox,
  orgId: string,
  kind: OtherKind,
  input: DestinationInput,
): Promise<DestinationView> {
  const id = newId(PREFIX[kind]);
  const [row] = await db
    .insert(webhooks)
    .values({
      id,
      orgId,
      kind,
      name: input.name ?? null,
      url: input.shown,
      settings: input.settings ?? null,
      events: input.events,
      enabled: input.enabled ?? true,
      credentialSealed:
        input.secret === undefined ? null : box.seal(input.secret, sealContext.credential(id)),
      // Only webhooks are signed; the column is required of every destination, so it holds an unused one.
      signingSecretSealed: box.seal(newSigningSecret(), sealContext.signingSecret(id)),
      rateLimitPerSecond: input.rateLimitPerSecond ?? null,
      digestAfter: input.digestAfter ?? null,
    })
    .returning(columns);
  if (!row) throw new Error("insert returned no row");
  return row;
}

/** A page of the organization's destinations of `kind`, oldest first. */
export function listDestinations(
  db: Executor,
  orgId: string,
  kind: OtherKind,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<DestinationView>> {
  return keysetPage(
    db,
    {
      table: webhooks,
      columns,
      createdAt: webhooks.createdAt,
      id: webhooks.id,
      where: ofOrg(orgId, kind),
      newestFirst: false,
    },
    pageOf,
    perPage,
  );
}

/** One destination of the organization of `kind`, or `undefined`. */
export async function getDestination(
  db: Executor,
  orgId: string,
  kind: OtherKind,
  id: string,
  forUpdate = false,
): Promise<DestinationView | undefined> {
  const query = db
    .select(columns)
    .from(webhooks)
    .where(and(eq(webhooks.id, id), ofOrg(orgId, kind)));
  const [row] = forUpdate ? await query.for("update") : await query;
  return row;
}

/** Applies the given fields; absent ones stay. Re-enabling starts its health over, as for webhooks. */
export async function updateDestination(
  db: Executor,
  box: SecretBox,
  orgId: string,
  kind: OtherKind,
  id: string,
  changes: Partial<DestinationInput>,
): Promise<DestinationView | undefined> {
  const [row] = await db
    .update(webhooks)
    .set({
      name: changes.name,
      events: changes.events,
      enabled: changes.enabled,
      rateLimitPerSecond: changes.rateLimitPerSecond,
      digestAfter: changes.digestAfter,
      url: changes.shown,
      settings: changes.settings,
      ...(changes.secret !== undefined
        ? { credentialSealed: box.seal(changes.secret, sealContext.credential(id)) }
        : {}),
      ...(changes.enabled === true
        ? {
            disabledReason: null,
            failingSince: sql`case when ${webhooks.failingSince} is null then null else now() end`,
          }
        : {}),
      updatedAt: new Date(),
    })
    .where(and(eq(webhooks.id, id), ofOrg(orgId, kind)))
    .returning(columns);
  return row;
}
