import { EVENT_TYPES, type EventType } from "./events.ts";
import { testDelivery } from "./test-events.ts";

/**
 * The event catalog: every event type with the JSON Schema (2020-12) of the body a webhook receives and an
 * example, so receivers can validate what arrives. The examples are made by the same code as test events.
 */

type Schema = Record<string, unknown>;

const str = { type: "string" };
const time = { type: "string", format: "date-time" };
const nullable = (s: Schema) => ({ anyOf: [s, { type: "null" }] });
const LEVEL = { type: "string", enum: ["low", "medium", "high", "extreme"] };
const object = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({
  type: "object",
  properties,
  required,
  additionalProperties: false,
});

/** The `escalation.alert` body (seed 001). */
const ALERT_SCHEMA = object(
  {
    automation_id: { type: "string", pattern: "^aut_" },
    org_id: str,
    escalated_at: time,
    levels: object({
      escalation_level: LEVEL,
      emotional_intensity_level: LEVEL,
      sentiment_shift: nullable({
        type: "string",
        enum: ["sentiment degraded", "sentiment improved", "no change"],
      }),
    }),
    record: object({
      id: { type: "string", pattern: "^rec_" },
      url: { type: "string", format: "uri" },
      source_url: nullable({ type: "string" }),
      content_excerpt: str,
      created_at: time,
      source: str,
    }),
    test: { const: true },
  },
  ["automation_id", "org_id", "escalated_at", "levels", "record"],
);

const destination = { webhook_id: str, url: str };

/** The seed-003 envelope with the `data` of one event type. */
function envelope(data: Schema): Schema {
  return object({ id: { type: "string", pattern: "^evt_" }, event: str, created_at: time, data });
}

const DATA: Record<Exclude<EventType, "escalation.alert">, Schema> = {
  "test.webhook": object({ ...destination, message: str, test: { const: true } }, [
    "webhook_id",
    "url",
    "message",
  ]),
  "destination.failing": object({ ...destination, failing_since: time, reason: str, test: { const: true } }, [
    "webhook_id",
    "url",
    "failing_since",
    "reason",
  ]),
  "destination.disabled": object(
    { ...destination, failing_since: time, reason: str, test: { const: true } },
    ["webhook_id", "url", "failing_since", "reason"],
  ),
  "destination.recovered": object(
    { ...destination, failing_since: { type: "null" }, reason: { type: "null" }, test: { const: true } },
    ["webhook_id", "url", "failing_since", "reason"],
  ),
};

const DESCRIPTIONS: Record<EventType, string> = {
  "escalation.alert":
    "An automation matched a record: the alert body of seed 001, sent as it is (no envelope).",
  "test.webhook": "Sent by `POST …/:id/test`; checks that the destination receives and verifies deliveries.",
  "destination.failing":
    "A destination's attempts have started failing; sent to every destination that subscribes.",
  "destination.disabled": "A destination kept failing for DESTINATION_DISABLE_AFTER_S and was disabled.",
  "destination.recovered": "A failing or disabled destination took a delivery again.",
};

export interface CatalogEntry {
  type: EventType;
  description: string;
  schema: Schema;
  example: unknown;
}

/** Every event type, in the order of {@link EVENT_TYPES}. `publicUrl` is the base of the example's links. */
export function eventCatalog(publicUrl: string): CatalogEntry[] {
  const target = {
    orgId: "org_example",
    orgSlug: "acme",
    webhookId: "whe_example0000000000000",
    webhookUrl: "https://receiver.example.com/hooks/escalations",
    publicUrl,
  };
  return EVENT_TYPES.map((type) => ({
    type,
    description: DESCRIPTIONS[type],
    schema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      ...(type === "escalation.alert" ? ALERT_SCHEMA : envelope(DATA[type])),
    },
    example: JSON.parse(testDelivery(type, target).payload),
  }));
}
