import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { Redis } from "ioredis";
import postgres from "postgres";
import { webhooks } from "../src/db/schema.ts";
import { DecryptError } from "../src/errors.ts";
import { generateSecretsKey, SecretBox, secretsKeyFromBase64 } from "../src/secrets/box.ts";
import { sealContext } from "../src/secrets/contexts.ts";
import { deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { runCli } from "./helpers/processes.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

const CREDENTIAL = "plaintext-credential-7f3a9c1e5b";

describe("credentials are sealed at rest", () => {
  let stack: Stack;
  let echo: Receiver;
  const baseline = handleBaseline();
  before(async () => {
    stack = await startStack({ env: { DELIVERY_RETRY_SCHEDULE: "1" } });
    // A receiver that echoes the request's headers back, and fails once so an attempt is retried.
    echo = await startReceiver({
      behaviour: (req, res, n) => {
        res
          .writeHead(n === 0 ? 500 : 200, { "content-type": "application/json" })
          .end(JSON.stringify(req.headers));
      },
    });
  });
  after(async () => {
    await echo.close();
    await stack.close();
    await assertNoOpenHandles(baseline);
  });

  test("the credential's plaintext is in no Redis key, no Postgres row and no log line", async () => {
    const wh = await stack.webhook({
      url: echo.url,
      events: ["*"],
      auth: { type: "bearer", credential: CREDENTIAL },
    });
    const [alert] = await enqueueAlerts(stack, wh.id);
    assert.ok(alert);
    await waitFor(
      "delivered",
      async () => (await deliveryRow(stack.rt.database.db, alert.id))?.status === "delivered",
    );
    assert.equal(echo.requests[0]?.headers.authorization, `Bearer ${CREDENTIAL}`);

    // Every key in Redis, whatever its type.
    const redis = new Redis(stack.config.redisUrl);
    try {
      let cursor = "0";
      let scanned = 0;
      do {
        const [next, keys] = await redis.scan(cursor, "COUNT", 1000);
        cursor = next;
        for (const key of keys) {
          scanned++;
          const dump = await redis.dumpBuffer(key);
          assert.ok(!dump?.toString("latin1").includes(CREDENTIAL), `redis key ${key} holds the credential`);
        }
      } while (cursor !== "0");
      assert.ok(scanned > 0);
    } finally {
      redis.disconnect();
    }

    // Every row of every table, as text: the echoed headers were masked before the excerpt was stored.
    const sql = postgres(stack.env.DATABASE_URL as string, { max: 1 });
    try {
      const tables = await sql`select tablename from pg_tables where schemaname = 'public'`;
      let rows = 0;
      for (const { tablename } of tables) {
        const dump = await sql.unsafe(`select t::text as row from "${tablename}" t`);
        for (const r of dump) {
          rows++;
          assert.ok(!String(r.row).includes(CREDENTIAL), `a row of ${tablename} holds the credential`);
        }
      }
      assert.ok(rows > 0);
      const excerpts =
        await sql`select response_excerpt from delivery_attempts where delivery_id = ${alert.id}`;
      assert.ok(excerpts.some((e) => String(e.response_excerpt).includes("Bearer [redacted]")));
    } finally {
      await sql.end();
    }

    assert.ok(stack.logs.length > 0);
    for (const line of stack.logs)
      assert.ok(!line.includes(CREDENTIAL), `log line holds the credential: ${line}`);
  });

  test("opening with a wrong key fails with a clear error, and so does a tampered value", async () => {
    const wh = await stack.webhook({
      url: echo.url,
      events: ["*"],
      auth: { type: "api_key", credential: CREDENTIAL },
    });
    const [row] = await stack.rt.database.db.select().from(webhooks).where(eq(webhooks.id, wh.id));
    const sealed = row?.credentialSealed;
    assert.ok(sealed && !sealed.includes(CREDENTIAL));
    assert.equal(stack.rt.box.open(sealed, sealContext.credential(wh.id)), CREDENTIAL);

    const other = new SecretBox(secretsKeyFromBase64(generateSecretsKey()));
    assert.throws(
      () => other.open(sealed, sealContext.credential(wh.id)),
      (err: unknown) =>
        err instanceof DecryptError &&
        /neither SECRETS_KEY/.test(err.message) &&
        !err.message.includes(CREDENTIAL),
    );
    // Same key id, altered ciphertext.
    const tampered = `${sealed.slice(0, -2)}${sealed.endsWith("AA") ? "BB" : "AA"}`;
    assert.throws(() => stack.rt.box.open(tampered, sealContext.credential(wh.id)), /failed authentication/);
    // The sealed value is bound to its row: copied to another webhook it does not open.
    assert.throws(
      () => stack.rt.box.open(sealed, sealContext.credential("whe_other")),
      /failed authentication/,
    );
  });

  test("rotate-secrets-key re-seals every secret under the new key; the old key alone no longer opens them", async () => {
    const wh = await stack.webhook({
      url: echo.url,
      events: ["*"],
      auth: { type: "bearer", credential: CREDENTIAL },
    });
    const newKey = generateSecretsKey();
    const result = await runCli(["rotate-secrets-key"], {
      ...stack.env,
      SECRETS_KEY: newKey,
      SECRETS_KEY_PREVIOUS: stack.env.SECRETS_KEY as string,
    });
    assert.equal(result.code, 0, result.stderr);
    const fresh = new SecretBox(secretsKeyFromBase64(newKey));
    const rows = await stack.rt.database.db.select().from(webhooks).where(eq(webhooks.orgId, stack.org.id));
    assert.ok(rows.length >= 2);
    for (const r of rows) {
      assert.equal(SecretBox.keyIdOf(r.signingSecretSealed), fresh.current.id);
      if (r.credentialSealed)
        assert.equal(fresh.open(r.credentialSealed, sealContext.credential(r.id)), CREDENTIAL);
    }
    const target = rows.find((r) => r.id === wh.id);
    assert.ok(target?.credentialSealed);
    assert.throws(
      () => stack.rt.box.open(target.credentialSealed as string, sealContext.credential(wh.id)),
      DecryptError,
    );
    assert.ok(!result.stdout.includes(CREDENTIAL) && !result.stderr.includes(CREDENTIAL));
  });

  test("a bad SECRETS_KEY stops start-up with a message naming the variable", async () => {
    const result = await runCli(["migrate"], { ...stack.env, SECRETS_KEY: "not-a-key" });
    assert.equal(result.code, 78);
    assert.match(result.stderr, /SECRETS_KEY must be 32 bytes/);
  });
});
