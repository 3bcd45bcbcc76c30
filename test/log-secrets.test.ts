import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { buildServer } from "../src/api/server.ts";
import { webhooks } from "../src/db/schema.ts";
import { enableEd25519, rotateSigningSecret } from "../src/destinations/signing.ts";
import { createLogger } from "../src/log.ts";
import { generateSecretsKey, SecretBox, secretsKeyFromBase64 } from "../src/secrets/box.ts";
import { sealContext } from "../src/secrets/contexts.ts";
import { deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { runCli } from "./helpers/processes.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

const CREDENTIALS = {
  bearer: "cred-bearer-9a8b7c6d5e4f",
  api_key: "cred-apikey-1f2e3d4c5b6a",
  custom_header: "cred-custom-0a1b2c3d4e5f",
} as const;

describe("no secret in any log line", () => {
  let stack: Stack;
  let echo: Receiver;
  let app: Awaited<ReturnType<typeof buildServer>>;
  const baseline = handleBaseline();
  /** Every plaintext secret this run made: none may appear in a log line. */
  const secrets = new Set<string>(Object.values(CREDENTIALS));
  /** Log lines of the CLI runs, next to the runtime's own in stack.logs. */
  const cliOutput: string[] = [];

  before(async () => {
    stack = await startStack({ env: { LOG_LEVEL: "debug", DELIVERY_RETRY_SCHEDULE: "1" } });
    secrets.add(stack.org.adminApiKey);
    // Echoes every request header back and fails the first attempt, so excerpts and retries are exercised.
    const seen = new Set<string>();
    echo = await startReceiver({
      behaviour: (req, res) => {
        const key = String(req.headers["idempotency-key"]);
        const first = !seen.has(key);
        seen.add(key);
        res
          .writeHead(first ? 500 : 200, { "content-type": "application/json" })
          .end(JSON.stringify(req.headers));
      },
    });
    app = await buildServer(stack.rt);
  });
  after(async () => {
    await app.close();
    await echo.close();
    await stack.close();
    await assertNoOpenHandles(baseline);
  });

  const api = (
    method: "POST" | "GET" | "PATCH",
    url: string,
    payload?: unknown,
    key = stack.org.adminApiKey,
  ) => app.inject({ method, url, payload: payload as object, headers: { authorization: `Bearer ${key}` } });

  test("deliveries with every auth type, rotations, refused requests and a decrypt error", async () => {
    const db = stack.rt.database.db;
    const created: string[] = [];
    for (const type of ["none", "bearer", "api_key", "custom_header"] as const) {
      const res = await api("POST", "/api/integrations/webhooks", {
        url: echo.url,
        events: ["*"],
        auth:
          type === "none"
            ? { type }
            : {
                type,
                credential: CREDENTIALS[type],
                ...(type === "custom_header" ? { header_name: "X-Hook-Token" } : {}),
              },
      });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json() as { id: string; secret: string };
      secrets.add(body.secret);
      created.push(body.id);
    }
    // Refused requests that carry secrets: a reserved header name with a credential, and a wrong admin key.
    const refused = await api("POST", "/api/integrations/webhooks", {
      url: echo.url,
      events: ["*"],
      auth: { type: "custom_header", credential: CREDENTIALS.custom_header, header_name: "Authorization" },
    });
    assert.equal(refused.statusCode, 400, refused.body);
    const wrongKey = `${stack.org.adminApiKey.slice(0, -4)}zzzz`;
    secrets.add(wrongKey);
    assert.equal((await api("GET", "/api/integrations/webhooks", undefined, wrongKey)).statusCode, 401);

    // A rotation through the API, one with a grace period, and Ed25519 signing.
    const [first, second] = created as [string, string];
    const rotated = await api("POST", `/api/integrations/webhooks/${first}/rotate-secret`);
    assert.equal(rotated.statusCode, 200, rotated.body);
    secrets.add((rotated.json() as { secret: string }).secret);
    const graced = await rotateSigningSecret(db, stack.rt.box, stack.org.id, second, 600);
    assert.ok(graced);
    secrets.add(graced.secret);
    assert.ok(await enableEd25519(db, stack.rt.box, stack.org.id, second));
    const [row] = await db.select().from(webhooks).where(eq(webhooks.id, second));
    secrets.add(
      stack.rt.box.open(row?.ed25519SecretKeySealed as string, sealContext.ed25519SecretKey(second)),
    );

    const alerts = [];
    for (const id of created) alerts.push(...(await enqueueAlerts(stack, id)));
    const test = await api("POST", `/api/integrations/webhooks/${created[3]}/test`, {
      event: "test.webhook",
    });
    assert.equal(test.statusCode, 202, test.body);
    for (const a of alerts) {
      await waitFor("delivered", async () => (await deliveryRow(db, a.id))?.status === "delivered");
    }
    assert.ok(echo.requests.some((r) => r.headers.authorization === `Bearer ${CREDENTIALS.bearer}`));
    assert.ok(echo.requests.some((r) => r.headers["x-hook-token"] === CREDENTIALS.custom_header));

    // A decrypt error in the worker: a credential sealed under a key this process does not have.
    const foreign = new SecretBox(secretsKeyFromBase64(generateSecretsKey()));
    const broken = await stack.webhook({
      url: echo.url,
      events: ["*"],
      auth: { type: "bearer", credential: "x" },
    });
    secrets.add(broken.secret);
    const unreadable = "cred-unreadable-5e6f7a8b";
    secrets.add(unreadable);
    await db
      .update(webhooks)
      .set({ credentialSealed: foreign.seal(unreadable, sealContext.credential(broken.id)) })
      .where(eq(webhooks.id, broken.id));
    await enqueueAlerts(stack, broken.id);
    await waitFor("decrypt error logged", () => stack.logs.some((l) => l.includes("neither SECRETS_KEY")));

    // The CLI: rotate-secrets-key with a wrong previous key (fails on the first value), then the right one.
    const newKey = generateSecretsKey();
    const failed = await runCli(["rotate-secrets-key"], {
      ...stack.env,
      LOG_LEVEL: "debug",
      SECRETS_KEY: newKey,
      SECRETS_KEY_PREVIOUS: generateSecretsKey(),
    });
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /neither SECRETS_KEY/);
    cliOutput.push(failed.stdout, failed.stderr);
    await db.delete(webhooks).where(eq(webhooks.id, broken.id));
    const ok = await runCli(["rotate-secrets-key"], {
      ...stack.env,
      LOG_LEVEL: "debug",
      SECRETS_KEY: newKey,
      SECRETS_KEY_PREVIOUS: stack.env.SECRETS_KEY as string,
    });
    assert.equal(ok.code, 0, ok.stderr);
    cliOutput.push(ok.stdout, ok.stderr);

    const lines = [...stack.logs, ...cliOutput];
    assert.ok(
      stack.logs.some((l) => l.includes('"delivery attempt"')),
      "debug lines were collected",
    );
    assert.ok(
      stack.logs.some((l) => l.includes("request refused")),
      "refused requests were logged",
    );
    assert.ok(secrets.size >= 12);
    for (const line of lines) {
      for (const s of secrets)
        assert.ok(!line.includes(s), `a log line holds a secret (${s.slice(0, 8)}…): ${line}`);
    }
  });

  test("redaction catches secrets logged by field name, at any of the usual depths", () => {
    const out: string[] = [];
    const log = createLogger("debug", {
      write(l: string) {
        out.push(l);
        return true;
      },
    } as unknown as NodeJS.WritableStream);
    const s = "super-secret-value-123";
    log.info({
      credential: s,
      secret: s,
      signingSecret: s,
      body: { auth: { credential: s }, secret: s },
      admin_api_key: s,
      webhook: { api_key: s, token: s },
      headers: { authorization: `Bearer ${s}`, "x-api-key": s },
      req: { headers: { authorization: `Bearer ${s}`, "api-key": s, cookie: s } },
      res: { headers: { authorization: s } },
    });
    assert.equal(out.length, 1);
    assert.ok(!out[0]?.includes(s), out[0]);
    assert.match(out[0] ?? "", /\[redacted\]/);
  });
});
