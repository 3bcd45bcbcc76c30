import { Type } from "typebox";
import { maskSlackUrl, SLACK_DEFAULT_RATE_PER_SECOND } from "../../channels/slack.ts";
import type { DestinationView } from "../../destinations/others.ts";
import { Nullable } from "../schemas.ts";
import {
  destinationRoutes,
  DestinationName as Name,
  PATCH_BODY_OPTIONS,
  presentShared,
  RateInput,
  SharedViewFields,
  sharedBodyFields,
  sharedChanges,
  sharedInput,
} from "./other-destinations.ts";
import { urlChecker } from "./webhooks.ts";

const WebhookUrl = Type.String({
  maxLength: 2048,
  description:
    "The Slack incoming-webhook URL (`https://hooks.slack.com/services/…`). It is a secret: write-only, shown masked.",
});
const SlackRate = RateInput(`${SLACK_DEFAULT_RATE_PER_SECOND} per second, Slack's documented limit`);

const shared = sharedBodyFields(SlackRate);

const CreateBody = Type.Object(
  { name: Type.Optional(Name), webhook_url: WebhookUrl, ...shared.create },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  { name: Type.Optional(Name), webhook_url: Type.Optional(WebhookUrl), ...shared.patch },
  PATCH_BODY_OPTIONS,
);

const Slack = Type.Object({
  id: Type.String({ description: "`slk_…`" }),
  kind: Type.Literal("slack"),
  name: Nullable(Type.String()),
  webhook_url: Type.String({ description: "Masked: the URL itself is never shown again." }),
  ...SharedViewFields,
});

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
    ...presentShared(d, SLACK_DEFAULT_RATE_PER_SECOND),
  }),
  toInput(rt, b) {
    urlChecker(rt, "body.webhook_url")(b.webhook_url);
    return { ...sharedInput(b), shown: maskSlackUrl(b.webhook_url), secret: b.webhook_url };
  },
  toChanges(rt, b) {
    urlChecker(rt, "body.webhook_url")(b.webhook_url);
    return {
      ...sharedChanges(b),
      shown: b.webhook_url === undefined ? undefined : maskSlackUrl(b.webhook_url),
      secret: b.webhook_url,
    };
  },
});
