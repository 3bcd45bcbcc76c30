import { Type } from "typebox";
import { maskSlackUrl, SLACK_DEFAULT_RATE_PER_SECOND } from "../../channels/slack.ts";
import { DEFAULT_DIGEST_AFTER } from "../../delivery/digest.ts";
import type { DestinationView } from "../../destinations/others.ts";
import { compilePolicy, destinationUrlProblem } from "../../outbound/guard.ts";
import type { Runtime } from "../../runtime.ts";
import { invalidField } from "../errors.ts";
import { iso, Nullable, Timestamp } from "../schemas.ts";
import {
  DigestAfter,
  destinationRoutes,
  DestinationName as Name,
  PATCH_BODY_OPTIONS,
  RateInput,
} from "./other-destinations.ts";
import { Events } from "./webhooks.ts";

const WebhookUrl = Type.String({
  maxLength: 2048,
  description:
    "The Slack incoming-webhook URL (`https://hooks.slack.com/services/…`). It is a secret: write-only, shown masked.",
});
const SlackRate = RateInput(`${SLACK_DEFAULT_RATE_PER_SECOND} per second, Slack's documented limit`);

const CreateBody = Type.Object(
  {
    name: Type.Optional(Name),
    webhook_url: WebhookUrl,
    events: Events,
    enabled: Type.Optional(Type.Boolean({ default: true })),
    rate_limit_per_second: SlackRate,
    digest_after: DigestAfter,
  },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  {
    name: Type.Optional(Name),
    webhook_url: Type.Optional(WebhookUrl),
    events: Type.Optional(Events),
    enabled: Type.Optional(Type.Boolean()),
    rate_limit_per_second: SlackRate,
    digest_after: DigestAfter,
  },
  PATCH_BODY_OPTIONS,
);

const Slack = Type.Object({
  id: Type.String({ description: "`slk_…`" }),
  kind: Type.Literal("slack"),
  name: Nullable(Type.String()),
  webhook_url: Type.String({ description: "Masked: the URL itself is never shown again." }),
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  rate_limit_per_second: Type.Number({ description: "The rate the destination is held to." }),
  digest_after: Type.Integer({ description: "More alerts than this waiting go out as one digest." }),
  disabled_reason: Nullable(Type.String()),
  created_at: Timestamp(),
  updated_at: Timestamp(),
});

/** Outbound rules as for webhooks: https only (unless allowed), no private or metadata addresses. */
function checkUrl(rt: Runtime, url: string | undefined): void {
  if (url === undefined) return;
  const policy = compilePolicy({ allowlist: rt.config.destinationAllowlist, dnsServers: [] });
  const problem = destinationUrlProblem(url, { allowHttp: rt.config.allowHttpDestinations, policy });
  if (problem) throw invalidField("body.webhook_url", problem);
}

/**
 * `/api/integrations/slack`: Slack destinations. Their history, retry, recover and test events are the same
 * routes as every kind's (deliveries.ts).
 */
export const slackRoutes = destinationRoutes({
  kind: "slack",
  CreateBody,
  PatchBody,
  View: Slack,
  present: (d: DestinationView) => ({
    id: d.id,
    kind: "slack" as const,
    name: d.name,
    webhook_url: d.shown,
    events: d.events,
    enabled: d.enabled,
    rate_limit_per_second: d.rateLimitPerSecond ?? SLACK_DEFAULT_RATE_PER_SECOND,
    digest_after: d.digestAfter ?? DEFAULT_DIGEST_AFTER,
    disabled_reason: d.disabledReason,
    created_at: iso(d.createdAt) as string,
    updated_at: iso(d.updatedAt) as string,
  }),
  toInput(rt, b) {
    checkUrl(rt, b.webhook_url);
    return {
      name: b.name ?? null,
      shown: maskSlackUrl(b.webhook_url),
      secret: b.webhook_url,
      events: b.events,
      enabled: b.enabled ?? true,
      rateLimitPerSecond: b.rate_limit_per_second ?? null,
      digestAfter: b.digest_after ?? null,
    };
  },
  toChanges(rt, b) {
    checkUrl(rt, b.webhook_url);
    return {
      name: b.name,
      shown: b.webhook_url === undefined ? undefined : maskSlackUrl(b.webhook_url),
      secret: b.webhook_url,
      events: b.events,
      enabled: b.enabled,
      rateLimitPerSecond: b.rate_limit_per_second,
      digestAfter: b.digest_after,
    };
  },
});
