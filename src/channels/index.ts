import type { DestinationKind } from "../db/schema.ts";
import type { Channel } from "./channel.ts";
import { emailChannel } from "./email.ts";
import { slackChannel } from "./slack.ts";
import { webhookChannel } from "./webhook.ts";

/** Every kind of destination and the module that sends to it. A new kind adds its module here. */
const CHANNELS: Record<DestinationKind, Channel> = {
  webhook: webhookChannel,
  slack: slackChannel,
  email: emailChannel,
};

/** The rate a destination is held to: its own, or its kind's default (null: none). */
export function effectiveRate(kind: DestinationKind, own: number | null): number | null {
  return own ?? CHANNELS[kind].defaultRatePerSecond ?? null;
}

/** The channel of a destination kind. */
export function channelOf(kind: DestinationKind): Channel {
  return CHANNELS[kind];
}
