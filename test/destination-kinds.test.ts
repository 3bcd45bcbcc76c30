/**
 * One delivery core for every kind: the same failure, breaker, health events, recover and retention behaviour
 * for a webhook, a Slack destination (a loopback stand-in for Slack, answering as its documentation says)
 * and an email destination (a real SMTP server behind a TCP proxy of the test's own, refused to make it fail).
 * Real Postgres, Redis, the HTTP API and the delivery worker.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { eq, inArray, sql } from "drizzle-orm";
import { SMTPServer } from "smtp-server";
import { deliveries, webhooks } from "../src/db/schema.ts";
import { DestinationGuard } from "../src/delivery/isolation.ts";
import { Pruner } from "../src/retention/pruner.ts";
import { type ApiClient, startApiStack } from "./helpers/api.ts";
import { testTls } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startProxy, type TcpProxy } from "./helpers/proxy.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const DAY = 86_400_000;

interface Kind {
  name: "webhook" | "slack" | "email";
  base: string;
  /** Creates a destination of this kind that subscribes to every event; returns its id. */
  create(api: ApiClient): Promise<string>;
  /** Makes the destination fail (true) or work (false). */
  failing(on: boolean): Promise<void>;
  /** Messages the destination took so far. */
  received(): number;
}

async function smtpBehindProxy() {
  let taken = 0;
  const tls = testTls();
  const server = new SMTPServer({
    key: tls.key,
    cert: tls.cert,
    authOptional: true,
    logger: false,
    onData(stream, _s, cb) {
      stream.resume();
      stream.on("end", () => {
        taken++;
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  const proxy: TcpProxy = await startProxy(`127.0.0.1:${port}`);
  return {
    proxy,
    taken: () => taken,
    close: async () => {
      await proxy.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("every kind of destination shares the delivery core", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  for (const kindName of ["webhook", "slack", "email"] as const) {
    test(`${kindName}: failures count against it, its breaker opens, health events go out, recover delivers, retention prunes`, async () => {
      const smtp = await smtpBehindProxy();
      let failing = false;
      const answer = (ok: () => void, fail: () => void) => (failing ? fail() : ok());
      const target: Receiver = await startReceiver({
        path: "/services/T1/B1/tok3nS3cr3t",
        behaviour: (_q, res) =>
          answer(
            () => res.writeHead(200).end(kindName === "slack" ? "ok" : '{"ok":true}'),
            () => res.writeHead(500).end(kindName === "slack" ? "rollup_error" : "down"),
          ),
      });
      const observer = await startReceiver();
      const s = await startApiStack({
        worker: true,
        env: {
          SMTP_URL: `smtp://localhost:${smtp.proxy.port}`,
          SMTP_FROM: "alerts@shield.example",
          DELIVERY_RETRY_SCHEDULE: "0.2,0.2",
          BREAKER_FAILURE_THRESHOLD: "3",
          BREAKER_COOLDOWN_MS: "60000",
        },
      });
      const kinds: Record<typeof kindName, Kind> = {
        webhook: {
          name: "webhook",
          base: "/api/integrations/webhooks",
          create: async (api) =>
            (await api.post("/api/integrations/webhooks", { url: target.url, events: ["*"] })).json.id,
          failing: async (on) => {
            failing = on;
          },
          received: () => target.requests.length,
        },
        slack: {
          name: "slack",
          base: "/api/integrations/slack",
          create: async (api) =>
            (
              await api.post("/api/integrations/slack", {
                webhook_url: target.url,
                events: ["*"],
                rate_limit_per_second: 50,
              })
            ).json.id,
          failing: async (on) => {
            failing = on;
          },
          received: () => target.requests.length,
        },
        email: {
          name: "email",
          base: "/api/integrations/email",
          create: async (api) =>
            (
              await api.post("/api/integrations/email", {
                to: ["lead@example.com"],
                events: ["*"],
                rate_limit_per_second: 50,
              })
            ).json.id,
          failing: async (on) => {
            if (on) await smtp.proxy.refuse();
            else await smtp.proxy.accept();
          },
          received: () => smtp.taken(),
        },
      };
      const kind = kinds[kindName];
      try {
        const db = s.stack.rt.database.db;
        const obs = await s.api.post("/api/integrations/webhooks", {
          url: observer.url,
          events: ["destination.failing", "destination.recovered"],
        });
        assert.equal(obs.status, 201, obs.text);
        const id = await kind.create(s.api);
        assert.ok(id, "created");
        await kind.failing(true);
        const since = new Date(Date.now() - 1000).toISOString();
        const sent = await s.api.post(`${kind.base}/${id}/test`, { event: "escalation.alert" });
        assert.equal(sent.status, 202, sent.text);
        const deliveryId = sent.json.delivery_id as string;
        const status = async () =>
          (
            await db
              .select({ s: deliveries.status, a: deliveries.attemptCount })
              .from(deliveries)
              .where(eq(deliveries.id, deliveryId))
          )[0];
        await waitFor(
          "the alert failed after its 3 attempts",
          async () => (await status())?.s === "failed",
          30_000,
        );
        assert.equal((await status())?.a, 3);
        const [row] = await db.select({ f: webhooks.failingSince }).from(webhooks).where(eq(webhooks.id, id));
        assert.ok(row?.f, "the destination is failing");
        const guard = new DestinationGuard(s.stack.rt.redis, s.stack.config.queuePrefix);
        assert.equal(await guard.state(id), "open", "3 failures in a row opened its breaker");
        await waitFor("destination.failing announced", () =>
          observer.requests.some((q) => q.headers["webhook-event"] === "destination.failing"),
        );
        const failingEvent = observer.requests.find(
          (q) => q.headers["webhook-event"] === "destination.failing",
        );
        assert.equal(JSON.parse(failingEvent?.body ?? "{}").data.webhook_id, id);
        if (kindName === "slack") {
          assert.ok(!failingEvent?.body.includes("tok3nS3cr3t"), "a Slack URL's token stays out of events");
        }

        // The receiver is back. The breaker would let a probe through after its 60 s cool-down; the test ends
        // the cool-down itself rather than wait, and recover delivers the window.
        await kind.failing(false);
        await s.stack.rt.redis.del(`${s.stack.config.queuePrefix}:dest:${id}:breaker`);
        const recovered = await s.api.post(`${kind.base}/${id}/recover`, { since });
        assert.equal(recovered.status, 202, recovered.text);
        assert.deepEqual(recovered.json, { queued: 1, more: false });
        await waitFor("delivered after recover", async () => (await status())?.s === "delivered", 30_000);
        assert.ok(kind.received() >= 1);
        await waitFor("destination.recovered announced", () =>
          observer.requests.some((q) => q.headers["webhook-event"] === "destination.recovered"),
        );

        // Retention is the same for every kind: a delivery finished 40 days ago goes.
        await db
          .update(deliveries)
          .set({
            deliveredAt: sql`now() - interval '40 days'`,
            lastAttemptAt: sql`now() - interval '40 days'`,
          })
          .where(eq(deliveries.id, deliveryId));
        const pruner = new Pruner(db, s.stack.rt.log, {
          databaseUrl: s.stack.config.databaseUrl,
          deliveryRetentionMs: 30 * DAY,
          recordRetentionMs: 90 * DAY,
          auditRetentionMs: 365 * DAY,
          intervalMs: 60_000,
        });
        try {
          const pruned = await pruner.runOnce();
          assert.ok(pruned.deliveries >= 1);
        } finally {
          await pruner.stop();
        }
        assert.equal(
          (
            await db
              .select({ id: deliveries.id })
              .from(deliveries)
              .where(inArray(deliveries.id, [deliveryId]))
          ).length,
          0,
        );
      } finally {
        await s.close();
        await target.close();
        await observer.close();
        await smtp.close();
      }
    });
  }
});
