import { and, eq, sql } from "drizzle-orm";
import { maskSlackUrl } from "../channels/slack.ts";
import type { Executor } from "../db/client.ts";
import { keysetPage, type Page, type PageOf } from "../db/paging.ts";
import { webhooks } from "../db/schema.ts";
import { newId } from "../ids.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";
import { newSigningSecret, notDeleted } from "./store.ts";

/**
 * Slack destinations, stored beside webhooks (one outbox, one health, one history for every kind). The
 * incoming-webhook URL is the secret: sealed like a credential, shown only masked.
 */

export interface SlackInput {
  name?: string | null;
  webhookUrl: string;
  events: string[];
  enabled?: boolean;
  rateLimitPerSecond?: number | null;
}

export interface SlackView {
  id: string;
  name: string | null;
  /** The URL as shown: masked. */
  maskedUrl: string;
  events: string[];
  enabled: boolean;
  rateLimitPerSecond: number | null;
  disabledReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

const columns = {
  id: webhooks.id,
  name: webhooks.name,
  maskedUrl: webhooks.url,
  events: webhooks.events,
  enabled: webhooks.enabled,
  rateLimitPerSecond: webhooks.rateLimitPerSecond,
  disabledReason: webhooks.disabledReason,
  createdAt: webhooks.createdAt,
  updatedAt: webhooks.updatedAt,
};

const ofOrg = (orgId: string) => and(eq(webhooks.orgId, orgId), eq(webhooks.kind, "slack"), notDeleted);

/** Creates a Slack destination; its URL is sealed at once. */
export async function createSlack(
  db: Executor,
  box: SecretBox,
  orgId: string,
  input: SlackInput,
): Promise<SlackView> {
  const id = newId("slk");
  const [row] = await db
    .insert(webhooks)
    .values({
      id,
      orgId,
      kind: "slack",
      name: input.name ?? null,
      url: maskSlackUrl(input.webhookUrl),
      events: input.events,
      enabled: input.enabled ?? true,
      credentialSealed: box.seal(input.webhookUrl, sealContext.credential(id)),
      // Slack messages are not signed; the column is required of every destination, so it holds an unused one.
      signingSecretSealed: box.seal(newSigningSecret(), sealContext.signingSecret(id)),
      rateLimitPerSecond: input.rateLimitPerSecond ?? null,
    })
    .returning(columns);
  if (!row) throw new Error("insert returned no row");
  return row;
}

/** A page of the organization's Slack destinations, oldest first. */
export function listSlack(
  db: Executor,
  orgId: string,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<SlackView>> {
  return keysetPage(
    db,
    {
      table: webhooks,
      columns,
      createdAt: webhooks.createdAt,
      id: webhooks.id,
      where: ofOrg(orgId),
      newestFirst: false,
    },
    pageOf,
    perPage,
  );
}

/** One Slack destination of the organization, or `undefined`. */
export async function getSlack(
  db: Executor,
  orgId: string,
  id: string,
  forUpdate = false,
): Promise<SlackView | undefined> {
  const query = db
    .select(columns)
    .from(webhooks)
    .where(and(eq(webhooks.id, id), ofOrg(orgId)));
  const [row] = forUpdate ? await query.for("update") : await query;
  return row;
}

/** Applies the given fields; absent ones stay. Re-enabling starts its health over, as for webhooks. */
export async function updateSlack(
  db: Executor,
  box: SecretBox,
  orgId: string,
  id: string,
  changes: Partial<SlackInput>,
): Promise<SlackView | undefined> {
  const [row] = await db
    .update(webhooks)
    .set({
      name: changes.name,
      events: changes.events,
      enabled: changes.enabled,
      rateLimitPerSecond: changes.rateLimitPerSecond,
      ...(changes.webhookUrl !== undefined
        ? {
            url: maskSlackUrl(changes.webhookUrl),
            credentialSealed: box.seal(changes.webhookUrl, sealContext.credential(id)),
          }
        : {}),
      ...(changes.enabled === true
        ? {
            disabledReason: null,
            failingSince: sql`case when ${webhooks.failingSince} is null then null else now() end`,
          }
        : {}),
      updatedAt: new Date(),
    })
    .where(and(eq(webhooks.id, id), ofOrg(orgId)))
    .returning(columns);
  return row;
}
