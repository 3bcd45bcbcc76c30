/**
 * Holes found by probing the product as an attacker would, each reproduced and closed: a credential that
 * follows its destination to another host, an organization revoking its last key, a receiver tolerance that
 * accepts any timestamp, a long credential echoed past the masking. Real Postgres, Redis, the HTTP API,
 * HTTPS receivers on loopback and the CLI as a process.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { deliveryAttempts, webhooks } from "../src/db/schema.ts";
import { verifyWebhook } from "../src/receiver/index.ts";
import { generateSecretsKey, SecretBox, secretsKeyFromBase64 } from "../src/secrets/box.ts";
import { sealContext } from "../src/secrets/contexts.ts";
import { rotateSecrets } from "../src/secrets/rotate.ts";
import { assertApiError, startApiStack } from "./helpers/api.ts";
import { createTestDatabase, testEnv } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { runCli, startCli } from "./helpers/processes.ts";
import { startProxy } from "./helpers/proxy.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deletePrefix, freePort } from "./helpers/redis.ts";
import { startTestDns } from "./helpers/ssrf.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";

describe("security", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("a new host for a destination needs its credential again; the same host does not", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const created = await s.api.post(WH, {
        url: "https://127.0.0.1:9/hook",
        events: ["*"],
        auth: { type: "bearer", credential: "tok-for-this-host" },
      });
      assert.equal(created.status, 201, created.text);
      const id = created.json.id;
      assertApiError(
        await s.api.patch(`${WH}/${id}`, { url: "https://localhost:9/hook" }),
        400,
        "ErrCodeMissingRequiredField",
        "body.auth.credential",
      );
      assert.equal((await s.api.get(`${WH}/${id}`)).json.url, "https://127.0.0.1:9/hook", "nothing changed");
      const samePath = await s.api.patch(`${WH}/${id}`, { url: "https://127.0.0.1:9/other" });
      assert.equal(samePath.status, 200, "the same host keeps its credential");
      assert.equal(samePath.json.auth.credential_set, true);
      const moved = await s.api.patch(`${WH}/${id}`, {
        url: "https://localhost:9/hook",
        auth: { type: "bearer", credential: "tok-for-the-new-host" },
      });
      assert.equal(moved.status, 200, moved.text);
      const none = await s.api.post(WH, { url: "https://127.0.0.1:9/x", events: ["*"] });
      assert.equal(
        (await s.api.patch(`${WH}/${none.json.id}`, { url: "https://localhost:9/x" })).status,
        200,
        "no credential, nothing to follow",
      );
    } finally {
      await s.close();
    }
  });

  test("a signing-secret rotation and a credential change landing between rotate-secrets-key's read and write survive it", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const db = s.stack.rt.database.db;
      const oldKey = s.stack.rt.box.current;
      const created = await s.api.post(WH, {
        url: "https://127.0.0.1:9/hook",
        events: ["*"],
        auth: { type: "bearer", credential: "tok-before" },
      });
      assert.equal(created.status, 201, created.text);
      const id = created.json.id as string;
      const bystander = await s.api.post(WH, { url: "https://127.0.0.1:9/other", events: ["*"] });
      // A value sealed under a key nobody configured: counted and left alone, not fatal.
      const stranger = new SecretBox(secretsKeyFromBase64(generateSecretsKey()));
      await db
        .update(webhooks)
        .set({ credentialSealed: stranger.seal("lost", sealContext.credential(bystander.json.id)) })
        .where(eq(webhooks.id, bystander.json.id));

      const box = new SecretBox(secretsKeyFromBase64(generateSecretsKey()), [oldKey]);
      let emergency: string | undefined;
      const report = await rotateSecrets(db, box, {
        beforeWrite: async (webhookId) => {
          if (webhookId !== id || emergency) return;
          // The API process still seals under the old key, as it does until it is restarted.
          const rotated = await s.api.post(`${WH}/${id}/rotate-secret`, {});
          assert.equal(rotated.status, 200, rotated.text);
          emergency = rotated.json.secret as string;
          const patched = await s.api.patch(`${WH}/${id}`, {
            auth: { type: "bearer", credential: "tok-after" },
          });
          assert.equal(patched.status, 200, patched.text);
        },
      });
      assert.ok(emergency && emergency !== created.json.secret);
      const [row] = await db.select().from(webhooks).where(eq(webhooks.id, id));
      assert.ok(row?.credentialSealed);
      const fresh = new SecretBox(box.current);
      assert.equal(fresh.open(row.signingSecretSealed, sealContext.signingSecret(id)), emergency);
      assert.equal(fresh.open(row.credentialSealed, sealContext.credential(id)), "tok-after");
      assert.equal(report.reread, 1, "the changed row was read again");
      assert.deepEqual(report.unreadable, { [stranger.current.id]: 1 });
      assert.deepEqual(report.remaining, { [stranger.current.id]: 1 });
      assert.equal(report.key, box.current.id);

      // Run again: nothing left to re-seal but the value no key opens.
      const again = await rotateSecrets(db, box);
      assert.deepEqual([again.resealed, again.reread, again.remaining], [0, 0, { [stranger.current.id]: 1 }]);
    } finally {
      await s.close();
    }
  });

  test("no new development key file while the database holds secrets sealed with another key", async () => {
    const database = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), "es-keyfile-"));
    const file = join(dir, "secrets.key");
    const port = await freePort();
    const { SECRETS_KEY: _none, ...env } = testEnv(database.url, {
      SECRETS_KEY_FILE: file,
      PORT: String(port),
    });
    const pg = await startProxy(database.url);
    const proxied = new URL(database.url);
    proxied.port = String(pg.port);
    try {
      // A first start while Postgres does not answer yet: it waits to check, then makes the file.
      await pg.refuse();
      const first = startCli(["serve"], { ...env, DATABASE_URL: proxied.toString() });
      await waitFor("the wait said", () => first.output.some((l) => l.includes("waiting for Postgres")));
      assert.ok(!existsSync(file), "no file before the database was checked");
      await pg.accept();
      // An empty database: the file is made, and the warning says where and what production must do.
      await waitFor(
        "the API",
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok,
      );
      assert.equal(await first.stop(), 0);
      assert.ok(existsSync(file));
      const warning = first.output.find((l) => l.includes("created a development key file"));
      assert.ok(warning?.includes(file) && warning.includes("production must set SECRETS_KEY"), warning);
      const keyId = secretsKeyFromBase64(readFileSync(file, "utf8").trim()).id;

      const org = await runCli(["org", "create", "keyfile-org"], env);
      assert.equal(org.code, 0, org.stderr);
      const second = startCli(["serve"], env);
      await waitFor(
        "the API",
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok,
      );
      const created = await fetch(`http://127.0.0.1:${port}${WH}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${JSON.parse(org.stdout).admin_api_key}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ url: "https://127.0.0.1:9/hook", events: ["*"] }),
      });
      assert.equal(created.status, 201);
      assert.equal(await second.stop(), 0);

      // The file is lost (a container restarted, another working directory): nothing starts, nothing is made.
      rmSync(file);
      for (const command of ["serve", "worker", "start"]) {
        const out = await runCli([command], env);
        assert.equal(out.code, 78, `${command}: ${out.stderr}`);
        assert.match(
          out.stderr,
          new RegExp(`SECRETS_KEY is not set .*sealed with key ${keyId}.*Set SECRETS_KEY`),
        );
        assert.ok(!existsSync(file), `${command} made no key file`);
      }
    } finally {
      await pg.close();
      rmSync(dir, { recursive: true, force: true });
      await deletePrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string);
      await database.drop();
    }
  });

  test("the last admin key cannot be revoked; the CLI makes a new one", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const keys = await s.api.get("/api/keys");
      assert.equal(keys.json.data.length, 1);
      const only = keys.json.data[0].id;
      assertApiError(await s.api.delete(`/api/keys/${only}`), 400, "ErrCodeBadRequest");
      assert.equal((await s.api.get("/api/keys")).status, 200, "the key still works");

      const second = await s.api.post("/api/keys", { name: "second" });
      assert.equal((await s.api.delete(`/api/keys/${only}`)).status, 204, "with another key, it can go");
      const viaSecond = s.api.as(second.json.api_key);
      assertApiError(await viaSecond.delete(`/api/keys/${second.json.id}`), 400, "ErrCodeBadRequest");

      const out = await runCli(["org", "key", "create", s.stack.org.slug], s.stack.env);
      assert.equal(out.code, 0, out.stderr);
      const made = JSON.parse(out.stdout) as { id: string; slug: string; admin_api_key: string };
      assert.deepEqual(
        [made.id, made.slug],
        [s.stack.org.id, s.stack.org.slug],
        "the JSON line of org create",
      );
      assert.equal((await s.api.as(made.admin_api_key).get("/api/keys")).json.data.length, 2);
      // At most 50 live keys: the 51st is refused, and a revocation makes room again.
      const admin = s.api.as(made.admin_api_key);
      for (let i = (await admin.get("/api/keys")).json.data.length; i < 50; i++) {
        assert.equal((await admin.post("/api/keys", { name: `k${i}` })).status, 201);
      }
      assertApiError(await admin.post("/api/keys", { name: "one too many" }), 400, "ErrCodeBadRequest");
      assert.equal((await admin.get("/api/keys")).json.total, 50);
      assert.equal((await admin.delete(`/api/keys/${second.json.id}`)).status, 204);
      assert.equal((await admin.post("/api/keys", { name: "room again" })).status, 201);
      const unknown = await runCli(["org", "key", "create", "no-such-org"], s.stack.env);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /no organization "no-such-org"/);
    } finally {
      await s.close();
    }
  });

  test("delivery history reads the same for an internal name, a missing name and a loopback name; the detail goes to the server log", async () => {
    const dns = await startTestDns({ "internal.test": ["10.1.2.3"] });
    const s = await startApiStack({
      worker: true,
      env: { DESTINATION_ALLOWLIST: "", DNS_SERVERS: dns.server },
    });
    const logs = s.stack.logs;
    try {
      const attemptOf = async (url: string) => {
        const created = await s.api.post(WH, { url, events: ["*"] });
        assert.equal(created.status, 201, created.text);
        const sent = await s.api.post(`${WH}/${created.json.id}/test`, { event: "test.webhook" });
        const detail = async () =>
          (await s.api.get(`${WH}/${created.json.id}/deliveries/${sent.json.delivery_id}`)).json.attempts as {
            error_kind: string;
            error_message: string;
          }[];
        await waitFor("the attempt stored", async () => (await detail()).length > 0);
        const history = await s.api.get(`${WH}/${created.json.id}/deliveries/${sent.json.delivery_id}`);
        const [attempt] = await detail();
        return { kind: attempt?.error_kind, message: attempt?.error_message, text: history.text };
      };
      // localhost resolves through /etc/hosts to loopback; internal.test through DNS to a private address.
      const seen = [
        await attemptOf("https://localhost:9/hook"),
        await attemptOf("https://internal.test/hook"),
        await attemptOf("https://missing.test/hook"),
      ];
      for (const a of seen) {
        assert.deepEqual(
          [a.kind, a.message],
          ["blocked", "destination does not resolve to a public address"],
        );
        for (const leak of ["127.0.0.1", "loopback", "10.1.2.3", "private", "ENOTFOUND"])
          assert.ok(!a.text.includes(leak), `the history names ${leak}: ${a.text}`);
      }
      const operator = logs.filter((l) => l.includes("delivery blocked by the outbound guard"));
      for (const detail of ["127.0.0.1", "10.1.2.3", "ENOTFOUND"])
        assert.ok(
          operator.some((l) => l.includes(detail)),
          `the operator's log has ${detail}`,
        );
    } finally {
      await s.close();
      await dns.close();
    }
  });

  test("1,000 requests with bad keys: 60 are heard, the rest refused before hashing, whatever X-Forwarded-For says", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const statuses = new Map<number, number>();
      let retryAfter: string | undefined;
      for (let i = 0; i < 1000; i++) {
        const admin = i % 2 === 0;
        const res = admin
          ? await s.api.get("/api/keys", {
              token: `esk_wrong${i}`,
              headers: { "x-forwarded-for": `203.0.113.${i % 250}` },
            })
          : await s.api.request("POST", "/webhook/custom/all", {
              token: null,
              headers: { "api-key": `wrong${i}`, "x-forwarded-for": `198.51.100.${i % 250}` },
              body: { records: [] },
            });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 429) {
          assert.equal(res.json.code, "ErrCodeRateLimited");
          retryAfter = String(res.headers["retry-after"]);
        }
      }
      assert.deepEqual(
        Object.fromEntries(statuses),
        { 401: 60, 429: 940 },
        "admin and ingestion keys share the count",
      );
      assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `Retry-After ${retryAfter}`);
      // The limit is the client's: the right key from the same address waits out the minute too.
      assert.equal((await s.api.get("/api/keys")).status, 429);
    } finally {
      await s.close();
    }
  });

  test("with TRUST_PROXY, the address is the one the named proxy forwarded", async () => {
    const s = await startApiStack({ worker: false, env: { TRUST_PROXY: "127.0.0.1" } });
    try {
      for (let i = 0; i < 60; i++) {
        const res = await s.api.get("/api/keys", {
          token: "esk_wrong",
          headers: { "x-forwarded-for": "203.0.113.7" },
        });
        assert.equal(res.status, 401);
      }
      const blocked = await s.api.get("/api/keys", { headers: { "x-forwarded-for": "203.0.113.7" } });
      assert.equal(blocked.status, 429, "203.0.113.7 is over its limit");
      const other = await s.api.get("/api/keys", { headers: { "x-forwarded-for": "203.0.113.8" } });
      assert.equal(other.status, 200, "another client behind the same proxy is not");
    } finally {
      await s.close();
    }
  });

  test("the receiver kit refuses a tolerance that would accept any timestamp", () => {
    for (const toleranceSeconds of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      assert.throws(
        () => verifyWebhook({ secrets: ["whs_x"], headers: {}, body: "", toleranceSeconds }),
        /toleranceSeconds must be a finite number/,
        String(toleranceSeconds),
      );
    }
  });

  test("a 4,096-character credential echoed by a receiver never reaches the stored excerpt", async () => {
    const credential = `c${"0123456789abcdef".repeat(256)}`.slice(0, 4096);
    const r = await startReceiver({
      // Echo what it was sent: some padding, then the Authorization header, then more.
      behaviour: (q, res) =>
        res.writeHead(500).end(`${"x".repeat(100)} ${q.headers.authorization} ${"y".repeat(100)}`),
    });
    const s = await startApiStack({ worker: true, env: { DELIVERY_RETRY_SCHEDULE: "" } });
    try {
      const created = await s.api.post(WH, {
        url: r.url,
        events: ["*"],
        auth: { type: "bearer", credential },
      });
      assert.equal(created.status, 201, created.text);
      const sent = await s.api.post(`${WH}/${created.json.id}/test`, { event: "test.webhook" });
      const db = s.stack.rt.database.db;
      await waitFor("the attempt stored", async () => {
        const rows = await db
          .select({ e: deliveryAttempts.responseExcerpt })
          .from(deliveryAttempts)
          .where(eq(deliveryAttempts.deliveryId, sent.json.delivery_id));
        return rows.length > 0;
      });
      const [row] = await db
        .select({ e: deliveryAttempts.responseExcerpt })
        .from(deliveryAttempts)
        .where(eq(deliveryAttempts.deliveryId, sent.json.delivery_id));
      const excerpt = row?.e ?? "";
      assert.ok(excerpt.startsWith(`${"x".repeat(100)} Bearer [redacted]`), excerpt.slice(0, 200));
      for (let i = 0; i + 16 <= credential.length; i += 512) {
        assert.ok(!excerpt.includes(credential.slice(i, i + 16)), `a piece of the credential at ${i} leaked`);
      }
    } finally {
      await s.close();
      await r.close();
    }
  });
});
