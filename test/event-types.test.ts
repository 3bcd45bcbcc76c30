/**
 * The event catalog: every event type is listed with a JSON Schema and an example, the examples validate,
 * and what a real webhook receiver is sent for each type validates against the catalog's schema. Real
 * Postgres, Redis, the HTTP API, a delivery worker and an HTTPS receiver on loopback.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { EVENT_TYPES } from "../src/destinations/events.ts";
import { startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

describe("GET /api/event-types", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("lists every event type; examples and real deliveries validate against its schema", async () => {
    const s = await startApiStack({ worker: true });
    const r = await startReceiver();
    try {
      const res = await s.api.get("/api/event-types");
      assert.equal(res.status, 200, res.text);
      const entries = res.json.data as {
        type: string;
        schema: object;
        example: unknown;
        description: string;
      }[];
      assert.deepEqual(
        entries.map((e) => e.type),
        [...EVENT_TYPES],
      );
      const ajv = addFormats(new Ajv2020({ strict: true, allErrors: true }));
      const validators = new Map(entries.map((e) => [e.type, ajv.compile(e.schema)]));
      for (const e of entries) {
        assert.ok(e.description.length > 10, `${e.type} is described`);
        const validate = validators.get(e.type);
        assert.ok(validate?.(e.example), `${e.type} example: ${JSON.stringify(validate?.errors)}`);
      }
      // A schema that accepted anything would prove nothing.
      assert.equal(validators.get("escalation.alert")?.({ automation_id: "aut_x" }), false);

      const dest = await s.api.post("/api/integrations/webhooks", { url: r.url, events: ["*"] });
      for (const type of EVENT_TYPES) {
        const sent = await s.api.post(`/api/integrations/webhooks/${dest.json.id}/test`, { event: type });
        assert.equal(sent.status, 202, sent.text);
      }
      await waitFor("every test event received", () => r.requests.length === EVENT_TYPES.length, 30_000);
      for (const q of r.requests) {
        const type = String(q.headers["webhook-event"]);
        const validate = validators.get(type);
        assert.ok(
          validate?.(JSON.parse(q.body)),
          `${type} as delivered: ${JSON.stringify(validate?.errors)}`,
        );
      }
      assert.equal(
        (await s.api.get("/api/event-types", { token: null })).status,
        401,
        "the catalog is behind an admin key like the rest of /api",
      );
    } finally {
      await r.close();
      await s.close();
    }
  });
});
