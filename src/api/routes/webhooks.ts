import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { inArray, sql } from "drizzle-orm";
import type { FastifyBaseLogger, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Executor } from "../../db/client.ts";
import type { PageOf } from "../../db/paging.ts";
import { type AuthType, webhooks } from "../../db/schema.ts";
import { heldCounts } from "../../delivery/history.ts";
import { releaseHeld } from "../../delivery/outbox.ts";
import { releaseInBatches } from "../../delivery/queue.ts";
import { RESERVED_HEADERS } from "../../delivery/request.ts";
import { ALL_EVENTS, EVENT_TYPES, eventUrl } from "../../destinations/events.ts";
import {
  GracePeriodError,
  getSigningSettings,
  MAX_GRACE_SECONDS,
  rotateSigningSecret,
  type SigningSettings,
  setSignatureScheme,
} from "../../destinations/signing.ts";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  holdAllPending,
  listWebhooks,
  updateWebhook,
  type WebhookChanges,
  type WebhookView,
} from "../../destinations/store.ts";
import { compilePolicy, destinationUrlProblem } from "../../outbound/guard.ts";
import type { Runtime } from "../../runtime.ts";
import { auditTarget } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { Health, healthReader } from "../destination-health.ts";
import { invalidField, missingField, notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import {
  adminSecurity,
  errorResponses,
  iso,
  NoQuery,
  Nullable,
  noBodyIsEmpty,
  PathId,
  StringEnum,
  Timestamp,
} from "../schemas.ts";

/** Longest credential accepted; real tokens are far shorter, and every attempt sends it as a header. */
export const MAX_CREDENTIAL_LENGTH = 4096;

const AUTH_TYPES = ["none", "bearer", "api_key", "custom_header"] as const;

/** RFC 9110 token: what a header name may be made of. */
const HEADER_TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

const AuthInput = Type.Object(
  {
    type: StringEnum(AUTH_TYPES, {
      description:
        "`bearer` sends `Authorization: Bearer <credential>`, `api_key` sends `X-API-Key: <credential>`, `custom_header` sends `<header_name>: <credential>`.",
    }),
    credential: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_CREDENTIAL_LENGTH,
        // What Node accepts in a header value: no CR, LF or other control character.
        pattern: "^[\\t\\x20-\\x7e\\x80-\\xff]+$",
        "x-message": "must not contain CR, LF or other control characters",
        description:
          "Write-only. Required for `bearer`, `api_key` and `custom_header`; on PATCH, leave it out to keep the stored one (same `type` only).",
      }),
    ),
    header_name: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        pattern: HEADER_TOKEN,
        "x-message": "must be a valid HTTP header name",
        description: "Required for `custom_header`; not one of the headers the product sets itself.",
      }),
    ),
  },
  { additionalProperties: false },
);

const Url = Type.String({
  minLength: 1,
  maxLength: 2048,
  description:
    "Where deliveries are POSTed. `https://` only (unless ALLOW_HTTP_DESTINATIONS); no private addresses.",
});

export const Events = Type.Array(StringEnum([...EVENT_TYPES, ALL_EVENTS]), {
  minItems: 1,
  maxItems: 50,
  uniqueItems: true,
  description: 'Event types to receive; `["*"]` means every current and future type.',
});

const Description = Nullable(Type.String({ maxLength: 500 }));

/** A destination's rate limit as the API takes it; every kind of destination has one. */
export const RateLimit = Nullable(
  Type.Number({
    exclusiveMinimum: 0,
    maximum: 1000,
    description:
      "Most attempts per second to this destination, across all workers; fractional allowed (0.2 is one every 5 s). Waiting for it spends no attempt. Null (default): no limit.",
  }),
);

const SIGNATURE_SCHEMES = ["standard", "timestamped-hex"] as const;

const SignatureSchemeInput = StringEnum(SIGNATURE_SCHEMES, {
  description:
    "`standard` (default): Standard Webhooks headers `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>` over `<id>.<timestamp>.<body>`. `timestamped-hex`: `webhook-signature: t=<timestamp>,v1=<hex>` over `<timestamp>.<body>` (seed 004's verification function). Both use HMAC-SHA256 keyed with the UTF-8 bytes of the whole `whs_…` secret. Takes effect from the next attempt on.",
});

const CreateBody = Type.Object(
  {
    url: Url,
    events: Events,
    enabled: Type.Optional(Type.Boolean({ default: true })),
    description: Type.Optional(Description),
    auth: Type.Optional(AuthInput),
    signature_scheme: Type.Optional(SignatureSchemeInput),
    rate_limit_per_second: Type.Optional(RateLimit),
  },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  {
    url: Type.Optional(Url),
    events: Type.Optional(Events),
    enabled: Type.Optional(
      Type.Boolean({
        description:
          "`false` holds the destination's pending deliveries at once; `true` releases every held one.",
      }),
    ),
    description: Type.Optional(Description),
    auth: Type.Optional(AuthInput),
    signature_scheme: Type.Optional(SignatureSchemeInput),
    rate_limit_per_second: Type.Optional(RateLimit),
  },
  {
    additionalProperties: false,
    description: "Every field is optional; the ones given replace the stored ones.",
  },
);

export const Webhook = Type.Object({
  id: Type.String({ description: "`whe_…`" }),
  url: Type.String(),
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  description: Nullable(Type.String()),
  auth: Type.Object({
    type: StringEnum(AUTH_TYPES),
    header_name: Nullable(Type.String()),
    credential_set: Type.Boolean({
      description: "Whether a credential is stored; the value is never shown.",
    }),
  }),
  disabled_reason: Nullable(Type.String({ description: "Why endpoint health disabled it; null otherwise." })),
  rate_limit_per_second: Nullable(Type.Number(), {
    description: "Most attempts per second across all workers; null: no limit.",
  }),
  signature_scheme: StringEnum(SIGNATURE_SCHEMES),
  ed25519_public_key: Nullable(Type.String(), {
    description:
      "Base64 of the raw 32-byte Ed25519 public key when Ed25519 signing is on (`v1a,` signatures, standard scheme only); null when off.",
  }),
  previous_secret_expires_at: Nullable(Timestamp(), {
    description:
      "While a rotation's grace period runs, when the previous secret stops signing; null otherwise.",
  }),
  created_at: Timestamp(),
  updated_at: Timestamp(),
});

export const Held = Type.Object(
  {
    total: Type.Integer({ description: "Deliveries held because the destination is disabled." }),
    past_retention: Type.Integer({
      description:
        "Of those, how many were created longer ago than DELIVERY_RETENTION: held deliveries are never pruned by age, so a destination disabled that long keeps them until it is enabled or deleted.",
    }),
    estimated: Type.Boolean({ description: "True when a count above 10,000 is the planner's estimate." }),
  },
  { description: "Only on one destination's `GET`." },
);

/** A destination as one GET shows it: with what it holds. */
const WebhookWithHeld = Type.Object({ ...Webhook.properties, health: Health, held: Held });
const ListedWebhook = Type.Object({ ...Webhook.properties, health: Health });

const Secret = Type.String({ description: "Signing secret (`whs_…`). Shown only on create and rotate." });

const RotateBody = Type.Object(
  {
    grace_period_seconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_GRACE_SECONDS,
        description: `How long the old secret keeps signing next to the new one, in whole seconds (0 to ${MAX_GRACE_SECONDS}, 7 days). Default 0: the old secret is invalid at once (seed 002).`,
      }),
    ),
  },
  {
    additionalProperties: false,
    description: "No body, `{}`, or `{grace_period_seconds}`.",
    "x-optional-body": true,
  },
);

const Rotated = Type.Object({
  secret: Secret,
  previous_secret_expires_at: Nullable(Timestamp(), {
    description:
      "Until when the old secret still signs (standard scheme: a second `v1,` signature); null when it stopped at once.",
  }),
});
const CreatedWebhook = Type.Object({ ...Webhook.properties, secret: Secret });

const IdParams = Type.Object(
  { id: PathId("Webhook destination id (`whe_…`)") },
  { additionalProperties: false },
);

/**
 * The signing settings of a page of destinations in one query, for the list (one
 * {@link getSigningSettings} per row would be a query per destination). Mirrors getSigningSettings: an
 * expired grace period shows as null, judged by the database clock like the delivery worker judges it.
 */
async function signingSettingsOf(db: Executor, ids: string[]): Promise<Map<string, SigningSettings>> {
  const rows = await db
    .select({
      id: webhooks.id,
      signature_scheme: webhooks.signatureScheme,
      ed25519_public_key: webhooks.ed25519PublicKey,
      previous_secret_expires_at: sql<Date | null>`case when ${webhooks.previousSecretExpiresAt} > now()
        then ${webhooks.previousSecretExpiresAt} end`.mapWith(webhooks.previousSecretExpiresAt),
    })
    .from(webhooks)
    .where(inArray(webhooks.id, ids));
  return new Map(rows.map(({ id, ...settings }) => [id, settings]));
}

/** A destination as the API shows it: the credential only as `credential_set`, no secret. */
export function presentWebhook(w: WebhookView, signing: SigningSettings) {
  return {
    id: w.id,
    url: w.url,
    events: w.events,
    enabled: w.enabled,
    description: w.description,
    auth: { type: w.authType, header_name: w.authHeaderName, credential_set: w.credentialSet },
    disabled_reason: w.disabledReason,
    rate_limit_per_second: w.rateLimitPerSecond,
    signature_scheme: signing.signature_scheme,
    ed25519_public_key: signing.ed25519_public_key,
    previous_secret_expires_at: iso(signing.previous_secret_expires_at),
    created_at: iso(w.createdAt),
    updated_at: iso(w.updatedAt),
  };
}

type AuthBody = { type: AuthType; credential?: string; header_name?: string };

/**
 * Checks an `auth` object against the rules its type implies and returns what to store. `current` is the stored
 * destination on PATCH: a credential or header name left out is kept when the type stays the same.
 */
export function resolveAuth(auth: AuthBody, current?: WebhookView): NonNullable<WebhookChanges["auth"]> {
  const path = "body.auth";
  const sameType = current?.authType === auth.type;
  if (auth.type !== "custom_header" && auth.header_name !== undefined) {
    throw invalidField(`${path}.header_name`, "only allowed when auth.type is custom_header");
  }
  if (auth.type === "none") {
    if (auth.credential !== undefined) {
      throw invalidField(`${path}.credential`, "not allowed when auth.type is none");
    }
    return { type: "none", headerName: null, credential: null };
  }
  if (auth.credential === undefined && !(sameType && current?.credentialSet)) {
    throw missingField(`${path}.credential`, `required when auth.type is ${auth.type}`);
  }
  if (auth.credential !== undefined && auth.credential.trim() !== auth.credential) {
    // HTTP drops leading and trailing whitespace of a header value, so the receiver would see another value.
    throw invalidField(`${path}.credential`, "must not start or end with a space or tab");
  }
  let headerName: string | null = null;
  if (auth.type === "custom_header") {
    headerName = auth.header_name ?? (sameType ? current?.authHeaderName : null) ?? null;
    if (headerName === null) {
      throw missingField(`${path}.header_name`, "required when auth.type is custom_header");
    }
    if (RESERVED_HEADERS.has(headerName.toLowerCase())) {
      throw invalidField(
        `${path}.header_name`,
        `${headerName} is set by Escalation Shield itself and cannot be used`,
      );
    }
  }
  return { type: auth.type, headerName, credential: auth.credential };
}

const recordWebhookChange = auditTarget("webhook");

/** A URL as the audit log keeps it: origin only, since receivers' URLs often carry a token in the path. */
function withMaskedUrl<T extends { url?: string }>(view: T | null | undefined): T | null {
  return view ? { ...view, ...(view.url === undefined ? {} : { url: eventUrl(view.url) }) } : null;
}

/**
 * Audits a change of a webhook destination. Its URL is kept as `https://host/…` (a replaced URL, token and
 * all, would otherwise stay readable for AUDIT_RETENTION); `url_changed: true` says when it changed.
 */
export function auditWebhook<B extends { url?: string }, A extends { url?: string }>(
  db: Executor,
  request: FastifyRequest,
  verb: string,
  id: string,
  before: B | null | undefined,
  after: A | null | undefined,
): Promise<void> {
  const changed = before && after && before.url !== after.url ? { url_changed: true } : {};
  const shownAfter = withMaskedUrl(after);
  return recordWebhookChange(
    db,
    request,
    verb,
    id,
    withMaskedUrl(before),
    shownAfter && { ...shownAfter, ...changed },
  );
}

/**
 * One destination of the organization with its signing settings, or `undefined`; `forUpdate` locks its row
 * first (for the "before" of a change that is audited).
 */
export async function loadWebhook(
  db: Executor,
  orgId: string,
  id: string,
  options: { forUpdate?: boolean } = {},
) {
  const view = await getWebhook(db, orgId, id, options);
  const signing = view && (await getSigningSettings(db, orgId, id));
  return view && signing ? presentWebhook(view, signing) : undefined;
}

/**
 * A stored credential was given for one host: a new URL on another host (a typo, a takeover of the admin
 * key) must not carry it along, so the change needs the credential again, or `auth.type: "none"`.
 */
function checkCredentialFollows(
  current: WebhookView,
  url: string | undefined,
  auth: AuthBody | undefined,
): void {
  if (url === undefined || !current.credentialSet) return;
  if (new URL(url).host.toLowerCase() === new URL(current.url).host.toLowerCase()) return;
  if (auth?.type === "none" || auth?.credential !== undefined) return;
  throw missingField(
    "body.auth.credential",
    "required when body.url moves to another host: the stored credential is not sent to a new host",
  );
}

/** `["*"]` stands alone: mixed with named types it would read as a narrower subscription than it is. */
export function checkEvents(events: string[] | undefined): void {
  if (events && events.length > 1 && events.includes(ALL_EVENTS)) {
    throw invalidField("body.events", '"*" must be the only entry when present');
  }
}

/** `/api/integrations/webhooks`: webhook destinations (seed 002), their secrets and test events. */
/**
 * Finishes an admin action's bulk work after the answer has gone (holding or releasing a backlog, a batch at
 * a time). A failure is logged with what was being done; the sweeper and the jobs themselves finish the work
 * in any case.
 */
export function inBackground(log: FastifyBaseLogger, what: string, work: () => Promise<number>): void {
  work().then(
    (rows) => log.info({ rows }, `destination: ${what} done`),
    (err: unknown) => log.warn({ err }, `destination: ${what} cut short; the sweeper finishes it`),
  );
}

/**
 * What a PATCH of `enabled` leaves to do once answered, for every kind of destination: disabling holds the
 * pending backlog, enabling releases the held one, a batch at a time in the background.
 */
export function afterEnabledChange(
  rt: Runtime,
  log: FastifyBaseLogger,
  id: string,
  enabled: boolean | undefined,
): void {
  const db = rt.database.db;
  if (enabled === false) inBackground(log, "holding", () => holdAllPending(db, id));
  if (enabled === true) {
    inBackground(log, "releasing", () =>
      releaseInBatches(rt.deliveryQueue, (after) => releaseHeld(db, id, undefined, after)),
    );
  }
}

/**
 * A URL check by the outbound rules every kind of destination sends under (https only unless allowed, no
 * private or metadata address, no user info); a refusal is a 400 naming `field`. Absent URLs pass.
 */
export function urlChecker(rt: Runtime, field: string): (url: string | undefined) => void {
  const policy = compilePolicy({ allowlist: rt.config.destinationAllowlist, dnsServers: [] });
  return (url) => {
    if (url === undefined) return;
    const problem = destinationUrlProblem(url, { allowHttp: rt.config.allowHttpDestinations, policy });
    if (problem) throw invalidField(field, problem);
  };
}

export const webhookRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  const checkUrl = urlChecker(rt, "body.url");
  const readHealth = healthReader(rt);

  const tags = ["webhooks"];
  const security = adminSecurity;

  app.get(
    "/integrations/webhooks",
    {
      schema: {
        tags,
        security,
        summary: "List webhook destinations",
        description: "Oldest first.",
        querystring: ListQuery,
        response: { 200: Paged(ListedWebhook), ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const withSigning = async (pageOf: PageOf, perPage: number) => {
        const page = await listWebhooks(db, orgId, pageOf, perPage);
        const [signing, health] = await Promise.all([
          signingSettingsOf(
            db,
            page.rows.map((w) => w.id),
          ),
          readHealth(page.rows),
        ]);
        // A destination deleted between the two reads has no settings: it is gone, so it is left out.
        return {
          ...page,
          rows: page.rows.flatMap((w) => {
            const settings = signing.get(w.id);
            const h = health.get(w.id);
            return settings && h ? [{ ...presentWebhook(w, settings), health: h }] : [];
          }),
        };
      };
      return answerList(request.query, "whe", withSigning, (view) => view);
    },
  );

  app.post(
    "/integrations/webhooks",
    {
      schema: {
        tags,
        security,
        summary: "Create a webhook destination",
        description: "Returns the signing secret once, in `secret`. Credentials are write-only.",
        querystring: NoQuery,
        body: CreateBody,
        response: { 201: CreatedWebhook, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const body = request.body;
      checkUrl(body.url);
      checkEvents(body.events);
      const auth = body.auth ? resolveAuth(body.auth) : undefined;
      const { created, view } = await db.transaction(async (tx) => {
        const made = await createWebhook(tx, rt.box, orgId, {
          url: body.url,
          events: body.events,
          enabled: body.enabled ?? true,
          description: body.description ?? null,
          auth: auth && { type: auth.type, headerName: auth.headerName, credential: auth.credential ?? null },
          signatureScheme: body.signature_scheme ?? "standard",
          rateLimitPerSecond: body.rate_limit_per_second ?? null,
        });
        const shown = await loadWebhook(tx, orgId, made.id);
        if (!shown) throw notFound("webhook destination");
        await auditWebhook(tx, request, "created", made.id, null, shown);
        return { created: made, view: shown };
      });
      request.log.info(
        { webhook: created.id, signatureScheme: view.signature_scheme },
        "webhook destination created",
      );
      return reply.code(201).send({ ...view, secret: created.secret });
    },
  );

  app.get(
    "/integrations/webhooks/:id",
    {
      schema: {
        tags,
        security,
        summary: "Get a webhook destination",
        params: IdParams,
        querystring: NoQuery,
        response: { 200: WebhookWithHeld, ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const row = await getWebhook(db, orgId, request.params.id);
      const view = row && (await loadWebhook(db, orgId, row.id));
      if (!row || !view) throw notFound("webhook destination");
      const [held, health] = await Promise.all([
        heldCounts(db, view.id, rt.config.deliveryRetentionMs),
        readHealth([row]),
      ]);
      return {
        ...view,
        health: health.get(row.id) as NonNullable<ReturnType<typeof health.get>>,
        held: { total: held.total, past_retention: held.pastRetention, estimated: held.estimated },
      };
    },
  );

  app.patch(
    "/integrations/webhooks/:id",
    {
      schema: {
        tags,
        security,
        summary: "Update a webhook destination",
        description:
          "A new URL or credential is used from the next attempt on. `enabled: false` stops deliveries at once (an attempt already in flight finishes) and marks the pending ones `held`; `enabled: true` makes the held ones due at once. Either answers without waiting for the backlog, which is held or released in batches right after.",
        params: IdParams,
        querystring: NoQuery,
        body: PatchBody,
        response: { 200: Webhook, ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      const body = request.body;
      checkUrl(body.url);
      checkEvents(body.events);
      const { view } = await db.transaction(async (tx) => {
        const current = await getWebhook(tx, orgId, id, { forUpdate: true });
        const before = current && (await loadWebhook(tx, orgId, id));
        if (!current || !before) throw notFound("webhook destination");
        checkCredentialFollows(current, body.url, body.auth);
        // Before updateWebhook, whose returned updated_at is then the row's last one.
        if (body.signature_scheme !== undefined) {
          await setSignatureScheme(tx, orgId, id, body.signature_scheme);
        }
        const changes: WebhookChanges = {
          url: body.url,
          events: body.events,
          enabled: body.enabled,
          description: body.description,
          auth: body.auth ? resolveAuth(body.auth, current) : undefined,
          rateLimitPerSecond: body.rate_limit_per_second,
        };
        const updated = await updateWebhook(tx, rt.box, orgId, id, changes);
        const signing = await getSigningSettings(tx, orgId, id);
        if (!updated || !signing) throw notFound("webhook destination");
        const after = presentWebhook(updated, signing);
        // A new credential is a change even though neither view shows it.
        const credential = body.auth?.credential !== undefined ? { credential_replaced: true } : {};
        await auditWebhook(tx, request, "updated", id, before, { ...after, ...credential });
        return { view: after };
      });
      // The answer does not wait for the backlog, however large: from the commit on nothing is claimed for a
      // disabled destination, and what an enable releases goes out a batch at a time as it is released (each
      // a new generation, due now; a job never runs before the row it points at is visible). Should this be
      // cut short (Redis away, the process stopped), the sweeper releases what is left, and a job of a
      // disabled destination holds its own delivery.
      afterEnabledChange(rt, request.log, id, body.enabled);
      request.log.info({ webhook: id, fields: Object.keys(body) }, "webhook destination updated");
      return view;
    },
  );

  app.delete(
    "/integrations/webhooks/:id",
    {
      schema: {
        tags,
        security,
        summary: "Delete a webhook destination",
        description:
          "Deletes the destination: from this answer on it is gone for the API and nothing more is sent to it, retries included. Its delivery history is removed in the background, a batch at a time, whatever its size.",
        params: IdParams,
        querystring: NoQuery,
        response: { 204: Type.Null({ description: "Deleted" }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      await db.transaction(async (tx) => {
        const before = await loadWebhook(tx, orgId, id, { forUpdate: true });
        if (!before || !(await deleteWebhook(tx, orgId, id))) throw notFound("webhook destination");
        await auditWebhook(tx, request, "deleted", id, before, null);
      });
      request.log.info({ webhook: request.params.id }, "webhook destination deleted");
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/integrations/webhooks/:id/rotate-secret",
    {
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        security,
        summary: "Rotate the signing secret",
        description:
          "Returns a new secret. Without `grace_period_seconds` (or with 0) the old one stops signing at once, from the next attempt on. With a grace period, every attempt until it ends carries two signatures in the standard scheme (`v1,<new> v1,<old>`), so receivers can switch over; `timestamped-hex` has room for one signature and uses the new secret only. Rotating again during a grace period drops the older secret at once: only one previous secret is kept.",
        params: IdParams,
        querystring: NoQuery,
        body: RotateBody,
        response: { 200: Rotated, ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      const grace = request.body.grace_period_seconds ?? 0;
      // One transaction: the row lock taken by the rotation makes the expiry read back this rotation's.
      const rotated = await db
        .transaction(async (tx) => {
          const before = await loadWebhook(tx, orgId, id, { forUpdate: true });
          const done = before && (await rotateSigningSecret(tx, rt.box, orgId, id, grace));
          const signing = done && (await getSigningSettings(tx, orgId, id));
          if (!done || !signing) return undefined;
          await auditWebhook(tx, request, "secret_rotated", id, before, {
            ...(await loadWebhook(tx, orgId, id)),
            grace_period_seconds: grace,
          });
          return { secret: done.secret, expiresAt: signing.previous_secret_expires_at };
        })
        .catch((err: unknown) => {
          // The schema already bounds the value; this keeps the answer a 400 should the two ever disagree.
          if (err instanceof GracePeriodError) throw invalidField("body.grace_period_seconds", err.message);
          throw err;
        });
      if (rotated === undefined) throw notFound("webhook destination");
      request.log.info({ webhook: id, graceSeconds: grace }, "signing secret rotated");
      return { secret: rotated.secret, previous_secret_expires_at: iso(rotated.expiresAt) };
    },
  );
};
