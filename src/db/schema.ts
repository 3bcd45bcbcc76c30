import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

const bytea = customType<{ data: Buffer }>({ dataType: () => "bytea" });

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();

export const organizations = pgTable("organizations", {
  id: text("id").primaryKey(),
  slug: text("slug").notNull().unique(),
  createdAt: createdAt(),
});

/** Admin API keys. Only the SHA-256 of the token is kept. */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    /** `admin` may change anything of its organization; `read-only` may only read. */
    scope: text("scope").$type<KeyScope>().notNull().default("admin"),
    createdAt: createdAt(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [
    index("api_keys_org_list_idx").on(t.orgId, t.createdAt, t.id),
    check("api_keys_scope_check", sql`${t.scope} in ('admin', 'read-only')`),
  ],
);

export type KeyScope = "admin" | "read-only";

/**
 * Every configuration change made through the admin API (and the CLI's key creation): who (`key_id`, null
 * for the CLI), what (`action` on `target_type`/`target_id`), the target before and after with secrets left
 * out, and the request's referenceID. Kept for AUDIT_RETENTION.
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    /** Not a foreign key: the event outlives a revoked key, and names it still. */
    keyId: text("key_id"),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    changes: jsonb("changes").$type<{ before: unknown; after: unknown }>().notNull(),
    referenceId: text("reference_id"),
  },
  (t) => [
    index("audit_events_org_list_idx").on(t.orgId, t.at, t.id),
    // Retention deletes by age over every organization.
    index("audit_events_at_idx").on(t.at),
  ],
);

export type AuthType = "none" | "bearer" | "api_key" | "custom_header";

/** The kinds of destination; each has its channel in `src/channels/`. */
export type DestinationKind = "webhook" | "slack" | "email";
export type SignatureScheme = "standard" | "timestamped-hex";

/**
 * Webhook destinations. Secret columns hold sealed envelopes (see secrets/box.ts), never plaintext.
 */
export const webhooks = pgTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** What the destination is (see DestinationKind); every kind shares the outbox, health and isolation. */
    kind: text("kind").$type<DestinationKind>().notNull().default("webhook"),
    /** An admin's label (Slack and email destinations). */
    name: text("name"),
    /** What a kind needs beyond a URL (an email destination's recipients); null for webhooks. */
    settings: jsonb("settings"),
    /** Where it sends. A Slack destination keeps only a masked form here; its URL is sealed in `credential_sealed`. */
    url: text("url").notNull(),
    description: text("description"),
    events: text("events").array().notNull(),
    enabled: boolean("enabled").notNull().default(true),
    disabledReason: text("disabled_reason"),
    authType: text("auth_type").$type<AuthType>().notNull().default("none"),
    authHeaderName: text("auth_header_name"),
    credentialSealed: text("credential_sealed"),
    signingSecretSealed: text("signing_secret_sealed").notNull(),
    /** The secret replaced by the last rotation, still signed with until `previousSecretExpiresAt`. */
    previousSigningSecretSealed: text("previous_signing_secret_sealed"),
    previousSecretExpiresAt: timestamp("previous_secret_expires_at", { withTimezone: true }),
    /** `standard` (Standard Webhooks) or `timestamped-hex` (`t=…,v1=<hex>`). */
    signatureScheme: text("signature_scheme").$type<SignatureScheme>().notNull().default("standard"),
    /** Ed25519 signing (`v1a,`) next to the HMAC one; the public key is published, the secret key sealed. */
    ed25519PublicKey: text("ed25519_public_key"),
    ed25519SecretKeySealed: text("ed25519_secret_key_sealed"),
    /** Most attempts in flight at once, across all workers; null means the configured default. */
    maxInFlight: integer("max_in_flight"),
    /** Most attempts per second across all workers (fractional: 0.2 is one every 5 s); null means none. */
    rateLimitPerSecond: doublePrecision("rate_limit_per_second"),
    /** Slack and email: more alerts than this waiting go out as one digest; null means the default (10). */
    digestAfter: integer("digest_after"),
    /** Start of the current run of failures; null while the destination is healthy. */
    failingSince: timestamp("failing_since", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("webhooks_org_list_idx").on(t.orgId, t.createdAt, t.id)],
);

/**
 * Destinations deleted by an admin whose rows are still being removed: from the request on they are
 * disabled and invisible, and the pruner deletes their deliveries in batches, then the destination itself
 * (which takes this row with it).
 */
export const webhookDeletions = pgTable("webhook_deletions", {
  webhookId: text("webhook_id")
    .primaryKey()
    .references(() => webhooks.id, { onDelete: "cascade" }),
  requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
});

export const automations = pgTable(
  "automations",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    active: boolean("active").notNull().default(true),
    filter: jsonb("filter").notNull().default(sql`'{}'::jsonb`),
    trigger: jsonb("trigger").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("automations_org_list_idx").on(t.orgId, t.createdAt, t.id)],
);

export const automationWebhooks = pgTable(
  "automation_webhooks",
  {
    automationId: text("automation_id")
      .notNull()
      .references(() => automations.id, { onDelete: "cascade" }),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
  },
  (t) => [
    primaryKey({ columns: [t.automationId, t.webhookId] }),
    index("automation_webhooks_webhook_idx").on(t.webhookId),
  ],
);

export type DeliveryStatus = "pending" | "held" | "delivered" | "failed";
/** Why a delivery is held besides its destination being disabled. */
export type HoldReason = "secret_unreadable";

/**
 * The outbox: one row per delivery, the source of truth. Redis only holds a cache of which of these are due.
 */
export const deliveries = pgTable(
  "deliveries",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    automationId: text("automation_id"),
    recordId: text("record_id"),
    eventType: text("event_type").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    /** The exact request body, frozen at creation so every attempt sends the same bytes. */
    payload: text("payload").notNull(),
    status: text("status").$type<DeliveryStatus>().notNull(),
    attemptCount: integer("attempt_count").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull(),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    /**
     * While an attempt runs: when its claim lapses if the worker dies. Kept apart from the indexed
     * `next_attempt_at` so claiming a row can be a HOT update that touches no index.
     */
    leasedUntil: timestamp("leased_until", { withTimezone: true }),
    /**
     * Names the claim the current lease belongs to: an outcome applies only while its claim is the current
     * one, so an attempt whose lease lapsed (and was claimed again) cannot overwrite the newer attempt's state.
     */
    claimToken: text("claim_token"),
    /** `attempt_count` when the current retry schedule began: 0, or where a `recover` restarted it. */
    scheduleStart: integer("schedule_start").notNull().default(0),
    /** Why a `held` delivery waits: null while its destination is disabled, `secret_unreadable` for a key problem. */
    holdReason: text("hold_reason").$type<HoldReason>(),
    /** The digest delivery that carried this alert in a storm (Slack and email); null otherwise. */
    digestId: text("digest_id"),
    /** Bumped by a manual retry so that an older queued job for this delivery does nothing. */
    generation: integer("generation").notNull().default(0),
    lastHttpStatus: integer("last_http_status"),
    lastError: text("last_error"),
    lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true }),
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("deliveries_idempotency_key_idx").on(t.idempotencyKey),
    // A destination's history and its batched walks, newest or oldest first: with the id in the key, a page
    // or a batch starts where the last ended even when many rows share one created_at (one transaction's).
    index("deliveries_webhook_walk_idx").on(t.webhookId, t.createdAt, t.id),
    index("deliveries_due_idx").on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // A history filtered by status, and the batched walks through a destination's pending or held rows
    // (hold, release, recover): each page or batch starts where the last ended.
    index("deliveries_webhook_status_walk_idx").on(t.webhookId, t.status, t.createdAt, t.id),
    // What retention deletes first: finished deliveries by when they finished.
    index("deliveries_finished_idx")
      .on(sql`coalesce(${t.deliveredAt}, ${t.lastAttemptAt}, ${t.createdAt})`)
      .where(sql`${t.status} in ('delivered', 'failed')`),
    index("deliveries_record_idx").on(t.recordId).where(sql`${t.recordId} is not null`),
  ],
);

export const deliveryAttempts = pgTable(
  "delivery_attempts",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    deliveryId: text("delivery_id")
      .notNull()
      .references(() => deliveries.id, { onDelete: "cascade" }),
    attemptNumber: integer("attempt_number").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull(),
    durationMs: integer("duration_ms").notNull(),
    httpStatus: integer("http_status"),
    errorKind: text("error_kind"),
    errorMessage: text("error_message"),
    /** First 2 KB of the response body, with the destination's secrets masked. */
    responseExcerpt: text("response_excerpt"),
  },
  (t) => [index("delivery_attempts_delivery_idx").on(t.deliveryId)],
);

/** Feedback integrations: where records come from. Only the SHA-256 of the ingestion key is kept. */
export const feedbackIntegrations = pgTable(
  "feedback_integrations",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    displayName: text("display_name").notNull(),
    description: text("description"),
    dataMutability: boolean("data_mutability").notNull().default(false),
    keyHash: text("key_hash").notNull().unique(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("feedback_integrations_org_list_idx").on(t.orgId, t.createdAt, t.id)],
);

export type RecordType =
  | "REVIEW"
  | "SURVEY"
  | "CONVERSATION"
  | "FORUM_CONVERSATION_THREAD"
  | "AUDIO_RECORDING";

/**
 * Stored feedback records. The id is derived from the integration and the sender's id, so the same
 * sender id is one record per integration. `version` grows each time a mutable record is replaced.
 */
export const records = pgTable(
  "records",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    integrationId: text("integration_id")
      .notNull()
      .references(() => feedbackIntegrations.id, { onDelete: "cascade" }),
    externalId: text("external_id").notNull(),
    fileId: text("file_id").notNull(),
    type: text("type").$type<RecordType>().notNull(),
    /** The feedback's own time (`createdAt`, converted to seconds). */
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull(),
    sourceUrl: text("source_url"),
    /** Normalized content: text, messages, survey responses or audio, by type. */
    content: jsonb("content").notNull(),
    /** Normalized metadata: `{ field: { type: "s"|"n"|"b", values: [...] } }`. */
    metadata: jsonb("metadata").notNull(),
    version: integer("version").notNull().default(1),
    /** The analysis of `analyzedVersion`; null until the evaluator has run. */
    analysis: jsonb("analysis"),
    analyzedVersion: integer("analyzed_version"),
    receivedAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("records_integration_external_idx").on(t.integrationId, t.externalId),
    index("records_org_idx").on(t.orgId),
    index("records_received_idx").on(t.receivedAt),
    index("records_unanalyzed_idx").on(t.id).where(sql`${t.analyzedVersion} is distinct from ${t.version}`),
  ],
);

/**
 * One row per alert ever created for a stored record (automation × destination × record), as the SHA-256 of
 * its idempotency key: what keeps an alert from being created twice after retention has deleted its delivery
 * row. It lives as long as its record, and goes with it.
 */
export const alertKeys = pgTable(
  "alert_keys",
  {
    keyHash: bytea("key_hash").primaryKey(),
    recordId: text("record_id")
      .notNull()
      .references(() => records.id, { onDelete: "cascade" }),
  },
  (t) => [index("alert_keys_record_idx").on(t.recordId)],
);

/** Why each automation did or did not fire for a record, as of its last evaluation. */
export const recordEvaluations = pgTable(
  "record_evaluations",
  {
    recordId: text("record_id")
      .notNull()
      .references(() => records.id, { onDelete: "cascade" }),
    automationId: text("automation_id")
      .notNull()
      .references(() => automations.id, { onDelete: "cascade" }),
    recordVersion: integer("record_version").notNull(),
    fired: boolean("fired").notNull(),
    reason: text("reason").notNull(),
    evaluatedAt: timestamp("evaluated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.recordId, t.automationId] }),
    // "When it last fired", one backward index step per automation; only fired verdicts are indexed.
    index("record_evaluations_fired_idx").on(t.automationId, t.evaluatedAt).where(sql`${t.fired}`),
  ],
);
