import type { DestinationKind } from "../db/schema.ts";
import type { Channel } from "./channel.ts";
import { webhookChannel } from "./webhook.ts";

/** Every kind of destination and the module that sends to it. A new kind adds its module here. */
const CHANNELS: Record<DestinationKind, Channel> = {
  webhook: webhookChannel,
};

/** The channel of a destination kind. */
export function channelOf(kind: DestinationKind): Channel {
  return CHANNELS[kind];
}
