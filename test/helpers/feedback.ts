import assert from "node:assert/strict";
import type { ApiClient } from "./api.ts";

/** Feedback records in the custom webhook's shape. */
export type FeedbackRecord = Record<string, unknown>;

/**
 * Over the API: a feedback integration, a destination at `url` and an automation that fires on high
 * escalation for that integration's records. `ingest` posts records with the integration's key.
 */
export async function alertingSetup(api: ApiClient, url: string, options: { mutable?: boolean } = {}) {
  const integration = await api.post("/api/integrations/feedback", {
    display_name: "ZendeskSupport",
    data_mutability: options.mutable ?? false,
  });
  assert.equal(integration.status, 201, integration.text);
  const destination = await api.post("/api/integrations/webhooks", { url, events: ["escalation.alert"] });
  assert.equal(destination.status, 201, destination.text);
  const automation = await api.post("/api/automations", {
    name: "escalations",
    active: true,
    trigger: { min_escalation_level: "high" },
    webhook_ids: [destination.json.id],
    filter: { integration_ids: [integration.json.id] },
  });
  assert.equal(automation.status, 201, automation.text);
  const ingest = async (records: FeedbackRecord[]) => {
    const res = await api.request("POST", "/webhook/custom/all", {
      token: null,
      headers: { "api-key": integration.json.api_key },
      body: { records },
    });
    assert.equal(res.status, 200, res.text);
  };
  return {
    integrationId: integration.json.id as string,
    webhookId: destination.json.id as string,
    ingest,
  };
}
