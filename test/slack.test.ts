/**
 * Slack destinations. Slack's servers cannot be reached from here, so a loopback HTTPS server that answers as
 * Slack's incoming-webhook documentation says (`ok`, its error strings, `429` with `Retry-After`) stands in
 * for Slack in every test. Real Postgres, Redis, the HTTP API, the evaluator and the delivery worker.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { deliveries, deliveryAttempts, webhooks } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Behaviour, type Receiver, startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const SLACK = "/api/integrations/slack";
/** The stand-in's path has the shape of a Slack incoming-webhook URL; its last part is the token. */
const HOOK_PATH = "/services/T0ESCAL8/B0SHIELD/s3cr3tT0k3nV4lu3";

/** Slack's answer to a message it accepts. */
const slackOk: Behaviour = (_q, res) => {
  res.writeHead(200, { "content-type": "text/html" }).end("ok");
};

const slackError =
  (status: number, error: string): Behaviour =>
  (_q, res) => {
    res.writeHead(status, { "content-type": "text/html" }).end(error);
  };

// biome-ignore lint/suspicious/noExplicitAny: the tests read Slack's JSON as it arrives.
type Msg = any;

async function standIn(behaviour: Behaviour = slackOk): Promise<Receiver> {
  return startReceiver({ behaviour, path: HOOK_PATH });
}

describe("Slack destinations (a loopback stand-in for Slack)", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("create, show masked, list, patch, delete; the URL is write-only and checked like a webhook's", async () => {
    const s = await startApiStack({ worker: false });
    const slack = await standIn();
    try {
      const created = await s.api.post(SLACK, {
        name: "#escalations",
        webhook_url: slack.url,
        events: ["escalation.alert"],
      });
      assert.equal(created.status, 201, created.text);
      const c = created.json;
      assert.match(c.id, /^slk_[a-z0-9]{20}$/);
      assert.equal(c.kind, "slack");
      assert.equal(c.name, "#escalations");
      assert.equal(c.rate_limit_per_second, 1, "Slack's documented one message a second by default");
      assert.ok(!created.text.includes("s3cr3tT0k3nV4lu3"), `the token never comes back: ${c.webhook_url}`);
      assert.match(c.webhook_url, /\/\*\*\*\*$/);
      const got = await s.api.get(`${SLACK}/${c.id}`);
      assert.equal(got.status, 200);
      assert.deepEqual(got.json.held, { total: 0, past_retention: 0, estimated: false });
      assert.ok(!got.text.includes("s3cr3tT0k3nV4lu3"));
      const list = await s.api.get(SLACK);
      assert.deepEqual(
        list.json.data.map((x: { id: string }) => x.id),
        [c.id],
      );
      assert.equal(
        (await s.api.get("/api/integrations/webhooks")).json.data.length,
        0,
        "a Slack destination is not a webhook destination",
      );
      assertApiError(await s.api.get(`/api/integrations/webhooks/${c.id}`), 404, "ErrCodeNotFound");

      const patched = await s.api.patch(`${SLACK}/${c.id}`, { rate_limit_per_second: 0.5, name: null });
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.json.rate_limit_per_second, 0.5);
      assert.equal(patched.json.name, null);

      for (const [body, field] of [
        [{ webhook_url: "http://127.0.0.1:1/services/x" }, "body.webhook_url"],
        [{ webhook_url: "https://169.254.169.254/services/x" }, "body.webhook_url"],
        [{ webhook_url: "not a url" }, "body.webhook_url"],
        [{ rate_limit_per_second: 0 }, "body.rate_limit_per_second"],
        [{ events: [] }, "body.events"],
        [{ url: slack.url }, "body.url"],
      ] as const) {
        assertApiError(
          await s.api.post(SLACK, { webhook_url: slack.url, events: ["*"], ...body }),
          400,
          "ErrCodeInvalidFieldFormat",
          field,
        );
      }
      assertApiError(
        await s.api.post(SLACK, { events: ["*"] }),
        400,
        "ErrCodeMissingRequiredField",
        "body.webhook_url",
      );
      assert.equal((await s.api.get(SLACK)).json.total, 1, "nothing stored from a refused request");

      assert.equal((await s.api.delete(`${SLACK}/${c.id}`)).status, 204);
      assertApiError(await s.api.get(`${SLACK}/${c.id}`), 404, "ErrCodeNotFound");
    } finally {
      await slack.close();
      await s.close();
    }
  });

  test("an alert arrives as Block Kit with a text fallback, and mentions or links in feedback do nothing", async () => {
    const s = await startApiStack({ worker: "all" });
    const slack = await standIn();
    try {
      const integration = await s.api.post("/api/integrations/feedback", { display_name: "ZendeskSupport" });
      const dest = await s.api.post(SLACK, { webhook_url: slack.url, events: ["escalation.alert"] });
      assert.equal(dest.status, 201, dest.text);
      const automation = await s.api.post("/api/automations", {
        name: "Refund escalations",
        trigger: { min_escalation_level: "high" },
        destination_ids: [dest.json.id],
      });
      assert.equal(automation.status, 201, automation.text);
      assert.deepEqual(automation.json.destination_ids, [dest.json.id]);
      assert.deepEqual(automation.json.webhook_ids, [], "webhook_ids lists webhook destinations only");
      const text =
        "<!channel> <@U123> <https://evil.example|click here> & Third time writing about the double charge. Refund me by Friday or my lawyer takes this to court.\r\nBcc: victim@example.com";
      const res = await s.api.request("POST", "/webhook/custom/all", {
        token: null,
        headers: { "api-key": integration.json.api_key },
        body: {
          records: [
            {
              id: "t-1",
              fileID: "tickets",
              type: "REVIEW",
              createdAt: Math.floor(Date.now() / 1000) - 60,
              text,
              sourceURL: "https://support.example.com/tickets/1?a=1&b=2|x",
              metadata: {},
            },
          ],
        },
      });
      assert.equal(res.status, 200, res.text);
      await waitFor("the alert posted", () => slack.requests.length === 1, 30_000);
      const req = slack.requests[0];
      assert.equal(req?.path, HOOK_PATH);
      assert.equal(req?.headers["content-type"], "application/json");
      const msg: Msg = JSON.parse(req?.body ?? "");
      const raw = req?.body ?? "";
      for (const live of ["<!channel>", "<@U123>", "<https://evil.example|click here>"]) {
        assert.ok(!raw.includes(live), `${live} reached Slack unescaped`);
      }
      assert.equal(msg.blocks[0].type, "header");
      assert.match(msg.blocks[0].text.text, /^Escalation: (high|extreme)$/);
      assert.equal(msg.blocks[0].text.type, "plain_text");
      const excerpt = msg.blocks[1].text.text as string;
      assert.ok(
        excerpt.startsWith(">&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click here&gt; &amp;"),
      );
      const fields = (msg.blocks[2].fields as { text: string }[]).map((f) => f.text);
      assert.deepEqual(
        fields.map((f) => f.split("\n")[0]),
        ["*Source*", "*Emotional intensity*", "*Sentiment shift*", "*When*", "*Automation*"],
      );
      assert.equal(fields[0], "*Source*\nZendeskSupport");
      assert.equal(fields[4], "*Automation*\nRefund escalations");
      assert.match(fields[3] as string, /^\*When\*\n<!date\^\d+\^\{date_short_pretty\} \{time\}\|\d{4}-/);
      const links = msg.blocks[3].elements[0].text as string;
      assert.match(links, /^<http:\/\/[^|>]+\/record\/rec_[a-z0-9]+\|Open the record>/);
      assert.ok(
        links.includes("<https://support.example.com/tickets/1?a=1&amp;b=2%7Cx|Source>"),
        `the source link cannot be broken out of: ${links}`,
      );
      assert.match(msg.text, /^Escalation: (high|extreme) \(ZendeskSupport\): &lt;!channel&gt;/);
      assert.ok(msg.blocks.length <= 50);
      for (const b of msg.blocks) if (b.text) assert.ok(b.text.text.length <= 3000);

      const rowOf = async () =>
        (
          await s.stack.rt.database.db
            .select({ status: deliveries.status, id: deliveries.id })
            .from(deliveries)
            .where(eq(deliveries.webhookId, dest.json.id))
        )[0];
      await waitFor("the delivery stored as delivered", async () => (await rowOf())?.status === "delivered");
      const row = await rowOf();
      const history = await s.api.get(`${SLACK}/${dest.json.id}/deliveries/${row?.id}`);
      assert.equal(history.status, 200, history.text);
      assert.equal(history.json.attempts[0].http_status, 200);
      assert.equal(history.json.attempts[0].response_excerpt, "ok");
    } finally {
      await slack.close();
      await s.close();
    }
  });

  test("test events render on Slack: an alert sample and test.webhook", async () => {
    const s = await startApiStack({ worker: true });
    const slack = await standIn();
    try {
      const dest = await s.api.post(SLACK, { webhook_url: slack.url, events: ["*"] });
      const id = dest.json.id;
      const a = await s.api.post(`${SLACK}/${id}/test`, { event: "escalation.alert" });
      assert.equal(a.status, 202, a.text);
      await waitFor("the sample alert posted", () => slack.requests.length === 1, 30_000);
      const t = await s.api.post(`${SLACK}/${id}/test`, { event: "test.webhook" });
      assert.equal(t.status, 202, t.text);
      await waitFor("test.webhook posted", () => slack.requests.length === 2, 30_000);
      const [alert, ping] = slack.requests.map((r) => JSON.parse(r.body) as Msg);
      assert.equal(alert.blocks[0].text.text, "[Test] Escalation: high");
      assert.equal(
        alert.blocks[1].text.text,
        ">This is a test alert from Escalation Shield. I have waited two weeks for a refund.",
      );
      assert.equal(ping.blocks[0].text.text, "[Test] Test message from Escalation Shield");
      assert.equal(ping.blocks[1].text.text, "This is a test event from Escalation Shield.");
      assert.match(ping.text, /^\[Test\] Test message from Escalation Shield\. /);
      assertApiError(
        await s.api.post(`/api/integrations/webhooks/${id}/test`, { event: "test.webhook" }),
        404,
        "ErrCodeNotFound",
      );
      // The operational events render too, each as a short message.
      for (const event of ["destination.failing", "destination.disabled", "destination.recovered"]) {
        assert.equal((await s.api.post(`${SLACK}/${id}/test`, { event })).status, 202);
      }
      await waitFor("the destination.* events posted", () => slack.requests.length === 5, 30_000);
      const headers = slack.requests.slice(2).map((r) => (JSON.parse(r.body) as Msg).blocks[0].text.text);
      assert.deepEqual(headers, [
        "[Test] A destination is failing",
        "[Test] A destination was disabled",
        "[Test] A destination recovered",
      ]);
      const disabled = JSON.parse(slack.requests[3]?.body ?? "{}") as Msg;
      assert.match(
        disabled.blocks[1].text.text,
        /was disabled: disabled automatically: every attempt has failed/,
      );

      // The OpenAPI document has every kind's routes.
      const doc = await s.api.get("/docs/json", { token: null });
      for (const path of [
        "/api/integrations/slack",
        "/api/integrations/slack/{id}",
        "/api/integrations/slack/{id}/deliveries",
        "/api/integrations/slack/{id}/deliveries/{delivery_id}/retry",
        "/api/integrations/slack/{id}/test",
        "/api/integrations/slack/{id}/recover",
        "/api/integrations/email",
        "/api/integrations/email/{id}/deliveries/{delivery_id}",
        "/api/event-types",
      ]) {
        assert.ok(doc.json.paths[path], `${path} is in the OpenAPI document`);
      }
    } finally {
      await slack.close();
      await s.close();
    }
  });

  test("a storm of 50 alerts goes out as a digest that lists them; each alert is delivered with its digest's id", async () => {
    const s = await startApiStack({ worker: true });
    const slack = await standIn();
    try {
      const db = s.stack.rt.database.db;
      const dest = await s.api.post(SLACK, { webhook_url: slack.url, events: ["*"] });
      assert.equal(dest.json.digest_after, 10);
      const alerts = await enqueueAlerts(s.stack, dest.json.id, 50);
      assert.equal(alerts.length, 50);
      const rows = async () =>
        db
          .select({
            id: deliveries.id,
            status: deliveries.status,
            digestId: deliveries.digestId,
            event: deliveries.eventType,
          })
          .from(deliveries)
          .where(eq(deliveries.webhookId, dest.json.id));
      await waitFor(
        "every alert and digest delivered",
        async () => (await rows()).every((r) => r.status === "delivered"),
        30_000,
      );
      const all = await rows();
      const digests = all.filter((r) => r.event === "escalation.digest");
      const carried = all.filter((r) => r.digestId !== null);
      assert.ok(digests.length >= 1, "a digest formed");
      assert.ok(carried.length >= 40, `${carried.length} of 50 alerts went out in digests`);
      assert.ok(slack.requests.length <= 50 - carried.length + digests.length);
      assert.ok(slack.requests.length < 12, `${slack.requests.length} posts for 50 alerts`);
      for (const c of carried) assert.ok(digests.some((d) => d.id === c.digestId));

      const [first] = digests;
      const detail = await s.api.get(`${SLACK}/${dest.json.id}/deliveries/${first?.id}`);
      assert.equal(detail.status, 200, detail.text);
      const ofFirst = carried.filter((c) => c.digestId === first?.id).map((c) => c.id);
      assert.deepEqual(
        [...detail.json.payload.delivery_ids].sort(),
        ofFirst.sort(),
        "the digest lists what it carried",
      );
      assert.equal(detail.json.payload.count, ofFirst.length);
      const history = await s.api.get(`${SLACK}/${dest.json.id}/deliveries?per_page=100`);
      const shown = history.json.data.find((d: { id: string }) => d.id === ofFirst[0]);
      assert.equal(shown.digest_id, first?.id);

      const posted = slack.requests
        .map((q) => JSON.parse(q.body) as Msg)
        .find((m) => /escalation alerts$/.test(m.blocks[0].text.text));
      assert.ok(posted, "the digest was posted");
      const sections = posted.blocks.filter((b: { type: string }) => b.type === "section");
      assert.equal(sections.length, Math.min(20, ofFirst.length), "up to 20 alerts listed");
      assert.match(sections[0].text.text, /^\*extreme\* · ZendeskSupport · <!date\^/);
      if (ofFirst.length > 20) {
        assert.equal(posted.blocks.at(-1).elements[0].text, `…and ${ofFirst.length - 20} more.`);
      }
      assert.ok(posted.blocks.length <= 50);
    } finally {
      await slack.close();
      await s.close();
    }
  });

  test("pacing: no two posts to one destination less than ~1 s apart by default", async () => {
    const s = await startApiStack({ worker: true });
    const slack = await standIn();
    try {
      const dest = await s.api.post(SLACK, { webhook_url: slack.url, events: ["*"] });
      for (let i = 0; i < 4; i++) {
        assert.equal(
          (await s.api.post(`${SLACK}/${dest.json.id}/test`, { event: "test.webhook" })).status,
          202,
        );
      }
      await waitFor("4 posts", () => slack.requests.length === 4, 30_000);
      const at = slack.requests.map((r) => r.at);
      const gaps = at.slice(1).map((x, i) => x - (at[i] as number));
      // One a second by Redis's clock; a request's own travel shifts its arrival by a few tens of ms.
      assert.ok(Math.min(...gaps) >= 800, `gaps: ${gaps.join(", ")} ms`);
      assert.ok(
        (at[3] as number) - (at[0] as number) >= 2900,
        `4 posts in ${(at[3] as number) - (at[0] as number)} ms`,
      );
    } finally {
      await slack.close();
      await s.close();
    }
  });

  test("a 429 waits its Retry-After without spending an attempt; permanent errors fail at once; 5xx retries", async () => {
    const s = await startApiStack({
      worker: true,
      env: { DELIVERY_RETRY_SCHEDULE: "1,1,1" },
    });
    let answers: Behaviour[] = [];
    const slack = await standIn((q, res, n) => (answers[n] ?? slackOk)(q, res, n));
    try {
      const db = s.stack.rt.database.db;
      const dest = await s.api.post(SLACK, {
        webhook_url: slack.url,
        events: ["*"],
        rate_limit_per_second: 100,
      });
      const id = dest.json.id;
      const sendTest = async () => {
        const r = await s.api.post(`${SLACK}/${id}/test`, { event: "test.webhook" });
        assert.equal(r.status, 202, r.text);
        return r.json.delivery_id as string;
      };
      const row = async (d: string) =>
        (
          await db
            .select({
              status: deliveries.status,
              attempts: deliveries.attemptCount,
              lastError: deliveries.lastError,
            })
            .from(deliveries)
            .where(eq(deliveries.id, d))
        )[0];

      // Two 429s with Retry-After: 1, then ok: delivered with one attempt, about 2 s later.
      answers = [
        (_q, res) => res.writeHead(429, { "retry-after": "1" }).end("rate_limited"),
        (_q, res) => res.writeHead(429, { "retry-after": "1" }).end("rate_limited"),
      ];
      const throttled = await sendTest();
      await waitFor(
        "delivered after two 429s",
        async () => (await row(throttled))?.status === "delivered",
        30_000,
      );
      assert.equal(slack.requests.length, 3);
      assert.equal((await row(throttled))?.attempts, 1, "the 429s spent no attempt");
      const [first, , third] = slack.requests.map((r) => r.at);
      assert.ok((third as number) - (first as number) >= 1900, "each 429 waited its Retry-After");

      // Each permanent answer fails the delivery at its first attempt, with Slack's reason.
      for (const [status, error] of [
        [400, "invalid_payload"],
        [403, "invalid_token"],
        [404, "channel_not_found"],
        [410, "channel_is_archived"],
        [404, "no_service"],
        [403, "action_prohibited"],
      ] as const) {
        const before: number = slack.requests.length;
        answers[before] = slackError(status, error);
        const d = await sendTest();
        await waitFor(`${error} fails`, async () => (await row(d))?.status === "failed", 30_000);
        const r = await row(d);
        assert.equal(r?.attempts, 1, `${error}: failed at once`);
        assert.equal(r?.lastError, `slack: ${error}`);
        assert.equal(slack.requests.length, before + 1);
      }
      const failing = await db
        .select({ failingSince: webhooks.failingSince })
        .from(webhooks)
        .where(eq(webhooks.id, id));
      assert.ok(failing[0]?.failingSince, "permanent errors mark the destination failing");

      // 500 then ok: retried on the schedule, delivered at the second attempt.
      answers[slack.requests.length] = slackError(500, "rollup_error");
      const flaky = await sendTest();
      await waitFor("delivered after a 500", async () => (await row(flaky))?.status === "delivered", 30_000);
      assert.equal((await row(flaky))?.attempts, 2);
      const attempts = await db
        .select({ status: deliveryAttempts.httpStatus })
        .from(deliveryAttempts)
        .where(eq(deliveryAttempts.deliveryId, flaky));
      assert.deepEqual(attempts.map((a) => a.status).sort(), [200, 500]);
      // The token in the URL never reaches the history.
      const stored = await db.select({ e: deliveryAttempts.responseExcerpt }).from(deliveryAttempts);
      assert.ok(stored.every((r) => !(r.e ?? "").includes("s3cr3tT0k3nV4lu3")));
    } finally {
      await slack.close();
      await s.close();
    }
  });
});
