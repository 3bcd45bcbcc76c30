import assert from "node:assert/strict";
import { test } from "node:test";
import { createTestDatabase, testEnv } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { runCli, startCli } from "./helpers/processes.ts";
import { deletePrefix } from "./helpers/redis.ts";
import { waitFor } from "./helpers/wait.ts";

test("escalation-shield demo runs end to end with nothing but Postgres and Redis", async () => {
  const baseline = handleBaseline();
  const database = await createTestDatabase();
  const env = testEnv(database.url);
  // The demo trusts its own receiver by itself: no test CA, no allowlist from the test.
  const { DESTINATION_ALLOWLIST: _allowlist, ...demoEnv } = env;
  try {
    const result = await runCli(["demo"], { ...demoEnv, NODE_EXTRA_CA_CERTS: "" });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /the receiver got 2 alert\(s\):/);
    assert.match(result.stdout, /authorization: Bearer \[credential\]/);
    assert.match(result.stdout, /idempotency-key: aut_\w+:whe_\w+:rec_\w+/);
    assert.match(result.stdout, /"escalation_level":"(high|extreme)"/);
    assert.match(result.stdout, /the Slack stand-in got 2 message\(s\), as Slack would show them:/);
    assert.match(result.stdout, /\[header\] Escalation: (high|extreme)/);
    assert.match(result.stdout, /\[field\] \*Automation\* High-risk feedback/);
    assert.match(result.stdout, /the SMTP server got 2 email\(s\):/);
    assert.match(result.stdout, /Subject: \[Escalation: (high|extreme)\] DemoSupport: /);
    assert.match(result.stdout, /Message-ID: <del_\w+@demo\.example>/);
    assert.ok(!result.stdout.includes("demo-token"), "the Slack URL's token is not printed");
    const consoleLine =
      /the console: (http:\/\/127\.0\.0\.1:\d+\/console) \(sign in with the demo's admin key (esk_\S+)\)/.exec(
        result.stdout,
      );
    assert.ok(consoleLine, "the console's address and a key are printed");
    assert.match(
      result.stdout,
      /records that did not fire:\n(.*\n)*\s+review-1002: escalation \w+; trigger: escalation level \w+ is below high/,
    );
  } finally {
    await deletePrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string);
    await database.drop();
  }
  await assertNoOpenHandles(baseline);
});

test("escalation-shield demo --keep stays up for the console it prints, until SIGTERM", async () => {
  const baseline = handleBaseline();
  const database = await createTestDatabase();
  const env = testEnv(database.url);
  const { DESTINATION_ALLOWLIST: _allowlist, ...demoEnv } = env;
  const demo = startCli(["demo", "--keep"], { ...demoEnv, NODE_EXTRA_CA_CERTS: "" });
  try {
    const line = await waitFor(
      "the console's line",
      () =>
        demo.output
          .map((l) => /the console: (\S+) \(sign in with the demo's admin key (\S+)\)/.exec(l))
          .find(Boolean),
      60_000,
    );
    const [, url, key] = line as RegExpExecArray;
    const page = await fetch(url as string);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Escalation Shield console/);
    const me = await fetch(new URL("/api/keys/current", url), {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(me.status, 200);
    assert.match(((await me.json()) as { organization: { slug: string } }).organization.slug, /^demo-/);
  } finally {
    assert.equal(await demo.stop(), 0);
    await deletePrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string);
    await database.drop();
  }
  await assertNoOpenHandles(baseline);
});
