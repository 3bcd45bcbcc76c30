/**
 * Email destinations against a real SMTP server on loopback (the `smtp-server` package, STARTTLS required,
 * AUTH PLAIN/LOGIN), whose messages are parsed with `mailparser` and checked field by field. Real Postgres,
 * Redis, the HTTP API and the delivery worker.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { type ParsedMail, simpleParser } from "mailparser";
import { SMTPServer, type SMTPServerSession } from "smtp-server";
import { deliveries, deliveryAttempts } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertApiError, startApiStack } from "./helpers/api.ts";
import { testTls } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startProxy } from "./helpers/proxy.ts";
import { waitFor } from "./helpers/wait.ts";

const EMAIL = "/api/integrations/email";

interface Received {
  from: string;
  to: string[];
  secure: boolean;
  user: string | undefined;
  raw: string;
  mail: ParsedMail;
}

/** An SMTP server on 127.0.0.1 that requires STARTTLS and AUTH; `answer` may refuse the n-th message. */
async function startSmtp(
  answer: (n: number) => { code: number; message: string } | undefined = () => undefined,
) {
  const received: Received[] = [];
  let n = 0;
  const tls = testTls();
  const server = new SMTPServer({
    key: tls.key,
    cert: tls.cert,
    authMethods: ["PLAIN", "LOGIN"],
    authOptional: false,
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === "shield" && auth.password === "p@ss word")
        return cb(null, { user: auth.username });
      return cb(new Error("Invalid username or password"));
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", async () => {
        const refuse = answer(n++);
        if (refuse) {
          return cb(Object.assign(new Error(refuse.message), { responseCode: refuse.code }));
        }
        const raw = Buffer.concat(chunks).toString("utf8");
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          secure: session.secure,
          user: session.user as string | undefined,
          raw,
          mail: await simpleParser(raw),
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    received,
    url: `smtp://shield:${encodeURIComponent("p@ss word")}@localhost:${port}`,
    attempts: () => n,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("email destinations (a real SMTP server on loopback)", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("an alert arrives as a text and HTML email over STARTTLS, and feedback cannot add a header", async () => {
    const smtp = await startSmtp();
    const s = await startApiStack({
      worker: "all",
      env: { SMTP_URL: smtp.url, SMTP_FROM: "Escalation Shield <alerts@shield.example>" },
    });
    try {
      const integration = await s.api.post("/api/integrations/feedback", { display_name: "ZendeskSupport" });
      const dest = await s.api.post(EMAIL, {
        name: "support leads",
        to: ["lead@example.com"],
        cc: ["ops@example.com"],
        events: ["escalation.alert"],
      });
      assert.equal(dest.status, 201, dest.text);
      assert.match(dest.json.id, /^eml_[a-z0-9]{20}$/);
      assert.deepEqual([dest.json.to, dest.json.cc], [["lead@example.com"], ["ops@example.com"]]);
      const automation = await s.api.post("/api/automations", {
        name: "Refund escalations",
        trigger: { min_escalation_level: "high" },
        destination_ids: [dest.json.id],
      });
      assert.equal(automation.status, 201, automation.text);
      const text =
        "Third time I'm writing about the double charge. Refund me by Friday or my lawyer takes this to court.\r\nBcc: victim@evil.example\r\n\r\n<script>alert(1)</script>";
      const res = await s.api.request("POST", "/webhook/custom/all", {
        token: null,
        headers: { "api-key": integration.json.api_key },
        body: {
          records: [
            {
              id: "e-1",
              fileID: "t",
              type: "REVIEW",
              createdAt: Math.floor(Date.now() / 1000) - 60,
              text,
              metadata: {},
            },
          ],
        },
      });
      assert.equal(res.status, 200, res.text);
      await waitFor("the email arrived", () => smtp.received.length === 1, 30_000);
      const m = smtp.received[0] as Received;
      assert.equal(m.secure, true, "STARTTLS was used");
      assert.equal(m.user, "shield", "AUTH with SMTP_URL's user");
      assert.equal(m.from, "alerts@shield.example");
      assert.deepEqual(
        m.to.sort(),
        ["lead@example.com", "ops@example.com"],
        "no recipient from the feedback",
      );
      assert.equal(m.mail.from?.text, '"Escalation Shield" <alerts@shield.example>');
      assert.equal(m.mail.headers.get("bcc"), undefined);
      assert.ok(!/^bcc:/im.test(m.raw.split("\r\n\r\n")[0] as string), "no Bcc header");
      assert.match(
        m.mail.subject ?? "",
        /^\[Escalation: (high|extreme)\] ZendeskSupport: Third time I'm writing about the double charge\.…$/,
      );
      const [row] = await s.stack.rt.database.db
        .select({ id: deliveries.id })
        .from(deliveries)
        .where(eq(deliveries.webhookId, dest.json.id));
      assert.equal(m.mail.messageId, `<${row?.id}@shield.example>`, "the Message-ID is the delivery's");
      assert.equal(m.mail.headers.get("auto-submitted"), "auto-generated");
      assert.ok(m.mail.text?.includes("Bcc: victim@evil.example"), "the feedback is in the body, as text");
      assert.ok(m.mail.text?.includes("Automation: Refund escalations"));
      assert.ok(m.mail.text?.includes("Source: ZendeskSupport"));
      assert.match(m.mail.text ?? "", /Record: http:\/\/\S+\/record\/rec_/);
      const html = String(m.mail.html);
      assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"), "HTML escaped");
      assert.ok(!html.includes("<script>"));
      assert.match(html, /<a href="http:\/\/[^"]+\/record\/rec_[a-z0-9]+">Open the record<\/a>/);
      await waitFor("stored as delivered", async () => {
        const [d] = await s.stack.rt.database.db
          .select({ status: deliveries.status })
          .from(deliveries)
          .where(eq(deliveries.webhookId, dest.json.id));
        return d?.status === "delivered";
      });
    } finally {
      await s.close();
      await smtp.close();
    }
  });

  test("4xx retries with the same Message-ID; 5xx fails at once with the server's reply; test events render", async () => {
    const refusals: Record<number, { code: number; message: string }> = {
      0: { code: 451, message: "Greylisted, try again later" },
      2: { code: 550, message: "Mailbox unavailable" },
    };
    const smtp = await startSmtp((n) => refusals[n]);
    const s = await startApiStack({
      worker: true,
      env: { SMTP_URL: smtp.url, SMTP_FROM: "alerts@shield.example", DELIVERY_RETRY_SCHEDULE: "1,1" },
    });
    try {
      const db = s.stack.rt.database.db;
      const dest = await s.api.post(EMAIL, { to: ["lead@example.com"], events: ["*"] });
      const id = dest.json.id;
      const test1 = await s.api.post(`${EMAIL}/${id}/test`, { event: "test.webhook" });
      assert.equal(test1.status, 202, test1.text);
      await waitFor("accepted at the second attempt", () => smtp.received.length === 1, 30_000);
      const status = async (d: string) =>
        (
          await db
            .select({ s: deliveries.status, a: deliveries.attemptCount, e: deliveries.lastError })
            .from(deliveries)
            .where(eq(deliveries.id, d))
        )[0];
      await waitFor("delivered", async () => (await status(test1.json.delivery_id))?.s === "delivered");
      assert.equal((await status(test1.json.delivery_id))?.a, 2);
      const codes = await db
        .select({ c: deliveryAttempts.httpStatus })
        .from(deliveryAttempts)
        .where(eq(deliveryAttempts.deliveryId, test1.json.delivery_id));
      assert.deepEqual(codes.map((c) => c.c).sort(), [250, 451]);
      const ping = smtp.received[0] as Received;
      assert.equal(ping.mail.subject, "[Test] [Escalation Shield] Test message from Escalation Shield");
      assert.equal(ping.mail.messageId, `<${test1.json.delivery_id}@shield.example>`);
      assert.match(
        ping.mail.text ?? "",
        /^Test message from Escalation Shield\n\nEvent: test\.webhook\nMessage: This is a test event/,
      );

      const test2 = await s.api.post(`${EMAIL}/${id}/test`, { event: "escalation.alert" });
      await waitFor("failed at once", async () => (await status(test2.json.delivery_id))?.s === "failed");
      const failed = await status(test2.json.delivery_id);
      assert.equal(failed?.a, 1, "a 5xx is final");
      assert.match(failed?.e ?? "", /^smtp: 550 Mailbox unavailable/);
      assert.equal(smtp.attempts(), 3);
    } finally {
      await s.close();
      await smtp.close();
    }
  });

  test("a storm makes one digest email listing the alerts; digest_after is the destination's own", async () => {
    const smtp = await startSmtp();
    const s = await startApiStack({
      worker: true,
      env: { SMTP_URL: smtp.url, SMTP_FROM: "alerts@shield.example" },
    });
    try {
      const dest = await s.api.post(EMAIL, { to: ["lead@example.com"], events: ["*"], digest_after: 3 });
      assert.equal(dest.status, 201, dest.text);
      assert.equal(dest.json.digest_after, 3);
      const alerts = await enqueueAlerts(s.stack, dest.json.id, 8);
      const rows = () =>
        s.stack.rt.database.db
          .select({ status: deliveries.status, digestId: deliveries.digestId })
          .from(deliveries)
          .where(eq(deliveries.webhookId, dest.json.id));
      await waitFor(
        "all delivered",
        async () => (await rows()).every((r) => r.status === "delivered"),
        30_000,
      );
      const carried = (await rows()).filter((r) => r.digestId !== null);
      assert.ok(carried.length >= 4, `${carried.length} of ${alerts.length} alerts in digests`);
      const digest = smtp.received.find((m) => (m.mail.subject ?? "").startsWith("[Escalation digest]"));
      assert.ok(digest, `subjects: ${smtp.received.map((m) => m.mail.subject).join(" | ")}`);
      assert.match(digest.mail.subject ?? "", /^\[Escalation digest\] \d+ alerts, up to extreme$/);
      const listed = (digest.mail.text ?? "").split("[extreme] ZendeskSupport").length - 1;
      assert.equal(
        listed,
        Number(/(\d+) alerts/.exec(digest.mail.subject ?? "")?.[1]),
        "every carried alert listed",
      );

      // Operational events render as short emails too.
      const before = smtp.received.length;
      for (const event of ["destination.failing", "destination.disabled", "destination.recovered"]) {
        assert.equal((await s.api.post(`${EMAIL}/${dest.json.id}/test`, { event })).status, 202);
      }
      await waitFor("3 event emails", () => smtp.received.length === before + 3, 30_000);
      assert.deepEqual(
        smtp.received
          .slice(before)
          .map((m) => m.mail.subject)
          .sort(),
        [
          "[Test] [Escalation Shield] Destination disabled: mailto:…",
          "[Test] [Escalation Shield] Destination failing: mailto:…",
          "[Test] [Escalation Shield] Destination recovered: mailto:…",
        ],
      );
    } finally {
      await s.close();
      await smtp.close();
    }
  });

  test("an SMTP server that stops answering mid-conversation ends the attempt by 30 s, and it is retried", async () => {
    const smtp = await startSmtp();
    const port = Number(new URL(smtp.url).port);
    const proxy = await startProxy(`127.0.0.1:${port}`);
    const s = await startApiStack({
      worker: true,
      env: {
        SMTP_URL: smtp.url.replace(`:${port}`, `:${proxy.port}`),
        SMTP_FROM: "alerts@shield.example",
        DELIVERY_RETRY_SCHEDULE: "1,1",
      },
    });
    try {
      const db = s.stack.rt.database.db;
      const dest = await s.api.post(EMAIL, {
        to: ["lead@example.com"],
        events: ["*"],
        rate_limit_per_second: 100,
      });
      const id = dest.json.id;
      // A first message opens the pooled connection; the second one stalls on it.
      await s.api.post(`${EMAIL}/${id}/test`, { event: "test.webhook" });
      await waitFor("the first message", () => smtp.received.length === 1, 30_000);
      proxy.stall();
      const stalled = await s.api.post(`${EMAIL}/${id}/test`, { event: "test.webhook" });
      const deliveryId = stalled.json.delivery_id as string;
      const attempts = () =>
        db
          .select({ ms: deliveryAttempts.durationMs, kind: deliveryAttempts.errorKind })
          .from(deliveryAttempts)
          .where(eq(deliveryAttempts.deliveryId, deliveryId));
      await waitFor("the stalled attempt ended", async () => (await attempts()).length === 1, 45_000, 250);
      const [first] = await attempts();
      assert.equal(first?.kind, "timeout");
      assert.ok((first?.ms ?? 0) >= 25_000 && (first?.ms ?? 0) <= 32_000, `the attempt took ${first?.ms} ms`);
      proxy.resume();
      proxy.cut();
      await waitFor(
        "delivered on the retry",
        async () =>
          (
            await db.select({ st: deliveries.status }).from(deliveries).where(eq(deliveries.id, deliveryId))
          )[0]?.st === "delivered",
        30_000,
      );
    } finally {
      await s.close();
      await proxy.close();
      await smtp.close();
    }
  });

  test("the API refuses email destinations without SMTP_URL, outside EMAIL_ALLOWED_DOMAINS, or past 20 recipients", async () => {
    const none = await startApiStack({ worker: false });
    try {
      assertApiError(
        await none.api.post(EMAIL, { to: ["a@example.com"], events: ["*"] }),
        400,
        "ErrCodeBadRequest",
      );
    } finally {
      await none.close();
    }
    const s = await startApiStack({
      worker: false,
      env: {
        SMTP_URL: "smtp://localhost:2525",
        SMTP_FROM: "alerts@shield.example",
        EMAIL_ALLOWED_DOMAINS: "example.com,Example.org",
      },
    });
    try {
      assertApiError(
        await s.api.post(EMAIL, { to: ["a@example.com", "b@evil.example"], events: ["*"] }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.to[1]",
      );
      assertApiError(
        await s.api.post(EMAIL, { to: ["a@example.com"], cc: ["x@gmail.com"], events: ["*"] }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.cc[0]",
      );
      const many = Array.from({ length: 11 }, (_, i) => `p${i}@example.org`);
      assertApiError(
        await s.api.post(EMAIL, { to: many, cc: many.map((a) => `c${a}`), events: ["*"] }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.cc",
      );
      assertApiError(
        await s.api.post(EMAIL, { to: ["not an address"], events: ["*"] }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.to",
      );
      assertApiError(
        await s.api.post(EMAIL, { to: [], events: ["*"] }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.to",
      );
      assert.equal((await s.api.get(EMAIL)).json.total, 0, "nothing stored from a refused request");
      const ok = await s.api.post(EMAIL, { to: ["a@EXAMPLE.org"], events: ["*"] });
      assert.equal(ok.status, 201, ok.text);
      const patched = await s.api.patch(`${EMAIL}/${ok.json.id}`, { cc: ["b@example.com"] });
      assert.deepEqual([patched.json.to, patched.json.cc], [["a@EXAMPLE.org"], ["b@example.com"]]);
    } finally {
      await s.close();
    }
  });
});
