import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { inArray } from "drizzle-orm";
import { loadConfig } from "../src/config.ts";
import { deliveries, deliveryAttempts } from "../src/db/schema.ts";
import { insertDeliveries, type NewDelivery } from "../src/delivery/outbox.ts";
import { ALERT_EVENT, alertIdempotencyKey } from "../src/delivery/payloads.ts";
import { queueDeliveries } from "../src/delivery/queue.ts";
import { testDelivery } from "../src/destinations/test-events.ts";
import { ConfigError, OutboundError } from "../src/errors.ts";
import { newId } from "../src/ids.ts";
import {
  allowlistEntryProblem,
  blockedReason,
  type CompiledPolicy,
  compilePolicy,
  destinationUrlProblem,
  dnsServerProblem,
  outboundUrl,
  resolveChecked,
} from "../src/outbound/guard.ts";
import { createOutboundClient, type OutboundClient } from "../src/outbound/http.ts";
import { sampleAlert } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import {
  CIDR_INSIDE,
  forbiddenUrlCases,
  type Listener,
  PUBLIC_V4,
  PUBLIC_V6,
  SILENT_NAME,
  SSRF_DNS_ZONE,
  startListener,
  startTestDns,
  TEST_ALLOWLIST,
  TRAP_HOSTS,
} from "./helpers/ssrf.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

/** [address, expected reason or undefined for public]. Never connected to: only classified. */
const ADDRESSES: [string, string | undefined][] = [
  ["127.0.0.1", "loopback"],
  ["127.255.255.254", "loopback"],
  ["2130706433", "loopback"],
  ["0x7f.1", "loopback"],
  ["0177.0.0.1", "loopback"],
  ["0x7f000001", "loopback"],
  ["127.1", "loopback"],
  ["0.0.0.0", "unspecified"],
  ["0.1.2.3", "unspecified"],
  ["255.255.255.255", "broadcast"],
  ["10.0.0.1", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.255", "private"],
  ["192.168.0.1", "private"],
  ["169.254.169.254", "link-local"],
  ["169.254.0.1", "link-local"],
  ["100.64.0.1", "carrier-grade NAT"],
  ["100.127.255.255", "carrier-grade NAT"],
  ["224.0.0.1", "multicast"],
  ["239.255.255.250", "multicast"],
  ["240.0.0.1", "reserved"],
  ["192.0.0.8", "reserved"],
  ["192.0.2.1", "reserved"],
  ["198.18.0.1", "reserved"],
  ["198.51.100.1", "reserved"],
  ["203.0.113.1", "reserved"],
  ["::1", "loopback"],
  ["[::1]", "loopback"],
  ["::", "unspecified"],
  ["fe80::1", "link-local"],
  ["fe80::1%eth0", "scoped (zone id)"],
  ["fe80::1%25lo", "scoped (zone id)"],
  ["fc00::1", "unique-local"],
  ["fd12:3456::1", "unique-local"],
  ["fec0::1", "site-local"],
  ["ff02::1", "multicast"],
  ["ff05::2", "multicast"],
  ["::ffff:127.0.0.1", "loopback, IPv4 127.0.0.1 embedded"],
  ["::ffff:7f00:1", "loopback, IPv4 127.0.0.1 embedded"],
  ["::ffff:a9fe:a9fe", "link-local, IPv4 169.254.169.254 embedded"],
  ["::ffff:0:7f00:1", "loopback, IPv4 127.0.0.1 embedded"],
  ["::127.0.0.1", "loopback, IPv4 127.0.0.1 embedded"],
  ["::10.0.0.1", "private, IPv4 10.0.0.1 embedded"],
  ["64:ff9b::a9fe:a9fe", "link-local, IPv4 169.254.169.254 embedded"],
  ["64:ff9b::7f00:1", "loopback, IPv4 127.0.0.1 embedded"],
  ["64:ff9b:1::a00:1", "local-use NAT64"],
  ["2002:7f00:1::", "6to4"],
  ["2001:0::1", "Teredo"],
  ["2001:db8::1", "reserved"],
  ["100::1", "discard-only"],
  ["4000::1", "not global unicast"],
  ["not-an-ip", "not an IP address"],
  [PUBLIC_V4, undefined],
  ["8.8.8.8", undefined],
  ["1.1.1.1", undefined],
  [PUBLIC_V6, undefined],
  ["::ffff:8.8.8.8", undefined],
  ["64:ff9b::808:808", undefined],
];

describe("outbound safety: the guard's rules", () => {
  test("blockedReason classifies every address form", () => {
    assert.ok(ADDRESSES.length >= 50);
    for (const [address, expected] of ADDRESSES) assert.equal(blockedReason(address), expected, address);
  });

  test("odd IPv4 spellings mean to the guard what they mean to a URL parser", () => {
    for (const form of ["2130706433", "0x7f.1", "0177.0.0.1", "0x7f000001", "017700000001", "127.1", "0"]) {
      const host = new URL(`http://${form}/`).hostname;
      assert.equal(blockedReason(form), blockedReason(host), form);
    }
  });

  test("destinationUrlProblem: scheme, credentials, private literals, and the allowlist", () => {
    const policy = compilePolicy({
      allowlist: ["allowed.test", "10.1.0.0/16", "fd00:1::/32"],
      dnsServers: [],
    });
    const strict = { allowHttp: false, policy };
    const lax = { allowHttp: true, policy };
    const cases: [string, typeof strict, RegExp | undefined][] = [
      ["https://hooks.example.com/x", strict, undefined],
      ["http://hooks.example.com/x", strict, /must start with https:\/\//],
      ["http://hooks.example.com/x", lax, undefined],
      ["ftp://hooks.example.com/x", lax, /https:\/\/ or http:\/\//],
      ["not a url", strict, /absolute URL/],
      ["https://user:pw@hooks.example.com/", strict, /user name or password/],
      ["https://127.0.0.1/", strict, /never allowed \(loopback\)/],
      ["https://2130706433/", strict, /loopback/],
      ["https://0x7f.1/", strict, /loopback/],
      ["https://[::ffff:7f00:1]/", strict, /loopback/],
      ["https://169.254.169.254/", strict, /link-local/],
      ["https://[64:ff9b::a9fe:a9fe]/", strict, /link-local/],
      ["https://100.64.0.1/", strict, /carrier-grade NAT/],
      ["https://[fe80::1%25lo]/", strict, /absolute URL/],
      ["https://10.1.2.3/", strict, undefined],
      ["https://10.2.0.1/", strict, /private/],
      ["https://[fd00:1::5]/", strict, undefined],
      ["https://[fd00:2::5]/", strict, /unique-local/],
      ["https://allowed.test/", strict, undefined],
      ["https://ALLOWED.TEST./", strict, undefined],
      // Names are checked at every attempt, when they are resolved, not when saved.
      ["https://loopback.test/", strict, undefined],
      ["https://8.8.8.8/", strict, undefined],
    ];
    for (const [url, options, expected] of cases) {
      const problem = destinationUrlProblem(url, options);
      if (expected === undefined) assert.equal(problem, undefined, url);
      else assert.match(problem ?? "(none)", expected, url);
    }
  });

  test("outboundUrl refuses what is not an http(s) URL without credentials, as blocked", () => {
    for (const url of [
      "file:///etc/passwd",
      "gopher://x/",
      "http://u:p@example.com/",
      "http://[fe80::1%25lo]/",
      "::",
    ]) {
      assert.throws(
        () => outboundUrl(url),
        (e: unknown) => e instanceof OutboundError && e.kind === "blocked",
        url,
      );
    }
    assert.equal(outboundUrl("https://example.com/x").hostname, "example.com");
  });

  test("allowlist and DNS_SERVERS entries are validated, and config names the variable", () => {
    for (const ok of [
      "hooks.internal",
      "allowed.test",
      "10.0.0.0/8",
      "fd00::/8",
      "127.0.0.1",
      "::1",
      "[::1]",
      "a-b.c_d.example.",
    ])
      assert.equal(allowlistEntryProblem(ok), undefined, ok);
    for (const bad of [
      "https://x.example",
      "10.0.0.0/33",
      "fd00::/129",
      "300.0.0.0/8",
      "0x7f.1",
      "2130706433",
      "a b",
      "-x.example",
      "x..y",
      "10.0.0.0/x",
    ])
      assert.ok(allowlistEntryProblem(bad), bad);
    for (const ok of ["127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53", "[2001:db8::1]"])
      assert.equal(dnsServerProblem(ok), undefined, ok);
    for (const bad of ["dns.example", "127.0.0.1:0", "127.0.0.1:70000", "[::1]:x", "[nope]:53", "1.2.3:53"])
      assert.ok(dnsServerProblem(bad), bad);

    const env = { NODE_ENV: "test" };
    assert.throws(
      () => loadConfig({ ...env, DESTINATION_ALLOWLIST: "10.0.0.0/8, https://bad.example" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.variable === "DESTINATION_ALLOWLIST" &&
        /https:\/\/bad\.example/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ ...env, DNS_SERVERS: "127.0.0.1:99999" }),
      (e: unknown) =>
        e instanceof ConfigError && e.variable === "DNS_SERVERS" && /^DNS_SERVERS /.test(e.message),
    );
    const config = loadConfig({
      ...env,
      DESTINATION_ALLOWLIST: " hooks.internal , 10.0.0.0/8 ",
      DNS_SERVERS: "[::1]:53,127.0.0.1",
    });
    assert.deepEqual(config.destinationAllowlist, ["hooks.internal", "10.0.0.0/8"]);
    assert.deepEqual(config.dnsServers, ["[::1]:53", "127.0.0.1"]);
  });
});

describe("outbound safety: resolution through DNS_SERVERS", () => {
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let policy: CompiledPolicy;
  before(async () => {
    dns = await startTestDns(SSRF_DNS_ZONE);
    policy = compilePolicy({ allowlist: TEST_ALLOWLIST.split(","), dnsServers: [dns.server] });
  });
  after(async () => {
    policy.resolver.cancel();
    await dns.close();
  });

  const kindOf = async (host: string) => {
    try {
      return await resolveChecked(policy, host);
    } catch (e) {
      assert.ok(e instanceof OutboundError);
      return `${e.kind}: ${e.message}`;
    }
  };

  test("names are resolved by the configured server, and every address must pass", async () => {
    assert.equal(
      await kindOf("public.test"),
      PUBLIC_V4,
      "a public name passes (resolved only, never connected)",
    );
    assert.ok(dns.queries.includes("public.test"));
    assert.match(await kindOf("public-then-private.test"), /^blocked: .*resolves to 127\.0\.0\.1.*loopback/);
    assert.match(await kindOf("public-then-private6.test"), /^blocked: .*resolves to ::1/);
    assert.match(await kindOf("public4-private6.test"), /^blocked: .*::1/);
    assert.match(await kindOf("metadata.test"), /^blocked: .*169\.254\.169\.254.*link-local/);
    assert.match(await kindOf("nat64.test"), /^blocked: .*link-local/);
    assert.match(await kindOf("mapped.test"), /^blocked: .*loopback/);
    assert.match(await kindOf("nowhere.test"), /^dns: could not resolve nowhere\.test: ENOTFOUND/);
    // The allowlist: the named host and the CIDR pass, their neighbours do not.
    assert.equal(await kindOf("allowed.test"), "127.0.0.1");
    assert.equal(await kindOf("ALLOWED.test."), "127.0.0.1");
    assert.match(await kindOf("sub.allowed.test"), /^blocked/);
    assert.equal(await kindOf("cidr-in.test"), CIDR_INSIDE);
    assert.equal(await kindOf(CIDR_INSIDE), CIDR_INSIDE);
    assert.equal(await kindOf(`[::ffff:${CIDR_INSIDE}]`), `::ffff:${CIDR_INSIDE}`);
    assert.match(await kindOf("cidr-out.test"), /^blocked/);
    assert.match(await kindOf("127.0.0.7"), /^blocked/);
  });

  test("a resolver that never answers fails as dns within the attempt's 5 s", async () => {
    const started = Date.now();
    assert.match(await kindOf(SILENT_NAME), /^dns: could not resolve silent\.test: ETIMEOUT/);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });
});

describe("outbound safety: deliveries and test deliveries to forbidden destinations", () => {
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let trap: Listener;
  let allowed: Listener;
  let stack: Stack;
  let guardOnly: CompiledPolicy;
  const baseline = handleBaseline();
  before(async () => {
    dns = await startTestDns(SSRF_DNS_ZONE);
    trap = await startListener(TRAP_HOSTS);
    allowed = await startListener(["127.0.0.1", CIDR_INSIDE]);
    stack = await startStack({
      env: { DESTINATION_ALLOWLIST: TEST_ALLOWLIST, DNS_SERVERS: dns.server, DELIVERY_RETRY_SCHEDULE: "1" },
    });
    guardOnly = compilePolicy({ allowlist: TEST_ALLOWLIST.split(","), dnsServers: [dns.server] });
  });
  after(async () => {
    guardOnly.resolver.cancel();
    await stack.close();
    await trap.close();
    await allowed.close();
    await dns.close();
    await assertNoOpenHandles(baseline);
  });

  /** An alert and a test delivery for `webhookId`, through insertDeliveries and queueDeliveries. */
  function itemsFor(webhookId: string, url: string): NewDelivery[] {
    const automationId = newId("aut");
    const recordId = newId("rec");
    return [
      {
        orgId: stack.org.id,
        webhookId,
        eventType: ALERT_EVENT,
        automationId,
        recordId,
        idempotencyKey: alertIdempotencyKey(automationId, webhookId, recordId),
        payload: sampleAlert(stack.org.slug, automationId, recordId),
      },
      testDelivery("test.webhook", {
        orgId: stack.org.id,
        orgSlug: stack.org.slug,
        webhookId,
        webhookUrl: url,
        publicUrl: stack.config.publicUrl,
      }),
    ];
  }

  async function send(items: NewDelivery[]): Promise<string[]> {
    const db = stack.rt.database.db;
    const { pending } = await db.transaction((tx) =>
      insertDeliveries(tx, items, stack.config.retrySchedule.length + 1),
    );
    await queueDeliveries(stack.rt.deliveryQueue, pending);
    return pending.map((p) => p.id);
  }

  test("every forbidden form fails as blocked, for alerts and test deliveries, and the trap gets nothing", async () => {
    const cases = forbiddenUrlCases(trap.port);
    assert.ok(cases.length >= 40, `${cases.length} cases`);
    // The guard alone, with the product's resolver settings, refuses each one first: nothing below is sent
    // anywhere unless that holds, so a broken guard cannot make this test reach a non-loopback address.
    for (const c of cases) {
      await assert.rejects(
        async () => resolveChecked(guardOnly, outboundUrl(c.url).hostname),
        (e: unknown) => e instanceof OutboundError && e.kind === "blocked",
        c.name,
      );
    }
    const byDelivery = new Map<string, string>();
    const items: NewDelivery[] = [];
    for (const c of cases) {
      const wh = await stack.webhook({
        url: c.url,
        events: ["escalation.alert"],
        auth: { type: "bearer", credential: "trap-cred" },
      });
      for (const item of itemsFor(wh.id, c.url)) {
        items.push(item);
        byDelivery.set(item.idempotencyKey, c.name);
      }
    }
    const ids = await send(items);
    assert.equal(ids.length, cases.length * 2);

    const db = stack.rt.database.db;
    const rows = await waitFor(
      "every delivery failed",
      async () => {
        const r = await db
          .select({
            id: deliveries.id,
            key: deliveries.idempotencyKey,
            status: deliveries.status,
            attempts: deliveries.attemptCount,
          })
          .from(deliveries)
          .where(inArray(deliveries.id, ids));
        return r.every((d) => d.status === "failed") ? r : undefined;
      },
      60_000,
    );
    const attempts = await db
      .select()
      .from(deliveryAttempts)
      .where(inArray(deliveryAttempts.deliveryId, ids));
    assert.equal(attempts.length, ids.length * 2, "two attempts each (DELIVERY_RETRY_SCHEDULE=1)");
    const keyOf = new Map(rows.map((r) => [r.id, r.key]));
    for (const a of attempts) {
      const name = byDelivery.get(keyOf.get(a.deliveryId) ?? "");
      assert.equal(a.errorKind, "blocked", `${name}: ${a.errorKind} ${a.errorMessage}`);
      assert.equal(a.httpStatus, null, name);
      // The history says only that it was blocked: which address a name resolved to is the operator's to know.
      assert.equal(a.errorMessage, "destination does not resolve to a public address", name);
      assert.ok(a.durationMs < 1000, `${name} took ${a.durationMs} ms: refused before any connect`);
    }
    const sample = attempts.find((a) =>
      byDelivery.get(keyOf.get(a.deliveryId) ?? "")?.includes("public A first"),
    );
    assert.ok(sample, "the public-A-first case was attempted");
    assert.ok(
      stack.logs.some((l) =>
        /public-then-private\.test resolves to 127\.0\.0\.1, which is not allowed \(loopback\)/.test(l),
      ),
      "the server log has the guard's detail",
    );
    assert.equal(trap.connections, 0, `the trap was reached: ${trap.requests.join("; ")}`);
    assert.deepEqual(trap.requests, []);
  });

  test("the allowlist opens exactly what it names: the host and the CIDR deliver, their neighbours do not", async () => {
    const ok = [
      `http://allowed.test:${allowed.port}/named-host`,
      `http://${CIDR_INSIDE}:${allowed.port}/cidr-ip`,
      `http://cidr-in.test:${allowed.port}/cidr-name`,
    ];
    const refused = [
      `http://sub.allowed.test:${trap.port}/`,
      `http://127.0.0.7:${trap.port}/`,
      `http://127.0.0.12:${trap.port}/`,
      `http://cidr-out.test:${trap.port}/`,
      `http://127.0.0.1:${trap.port}/`,
    ];
    const items: NewDelivery[] = [];
    const expected = new Map<string, string>();
    for (const url of [...ok, ...refused]) {
      const wh = await stack.webhook({ url, events: ["escalation.alert"] });
      for (const item of itemsFor(wh.id, url)) {
        items.push(item);
        expected.set(item.idempotencyKey, ok.includes(url) ? "delivered" : "failed");
      }
    }
    const ids = await send(items);
    const db = stack.rt.database.db;
    const rows = await waitFor(
      "all settled",
      async () => {
        const r = await db
          .select({
            key: deliveries.idempotencyKey,
            status: deliveries.status,
            lastError: deliveries.lastError,
          })
          .from(deliveries)
          .where(inArray(deliveries.id, ids));
        return r.every((d) => d.status === "delivered" || d.status === "failed") ? r : undefined;
      },
      30_000,
    );
    for (const r of rows) {
      assert.equal(r.status, expected.get(r.key), `${r.key}: ${r.lastError}`);
      if (r.status === "failed") assert.match(r.lastError ?? "", /^blocked: /);
    }
    assert.deepEqual(
      [...allowed.requests].sort(),
      [
        `127.0.0.1 POST /named-host`,
        `127.0.0.1 POST /named-host`,
        `${CIDR_INSIDE} POST /cidr-ip`,
        `${CIDR_INSIDE} POST /cidr-ip`,
        `${CIDR_INSIDE} POST /cidr-name`,
        `${CIDR_INSIDE} POST /cidr-name`,
      ].sort(),
    );
    assert.equal(trap.connections, 0, `the trap was reached: ${trap.requests.join("; ")}`);
  });
});

describe("outbound safety: the client itself, as the ingestion's audio check calls it", () => {
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let trap: Listener;
  let client: OutboundClient;
  let guardOnly: CompiledPolicy;
  const baseline = handleBaseline();
  before(async () => {
    dns = await startTestDns(SSRF_DNS_ZONE);
    trap = await startListener(TRAP_HOSTS);
    const policy = { allowlist: TEST_ALLOWLIST.split(","), dnsServers: [dns.server] };
    client = createOutboundClient(policy);
    guardOnly = compilePolicy(policy);
  });
  after(async () => {
    guardOnly.resolver.cancel();
    await client.close();
    await trap.close();
    await dns.close();
    await assertNoOpenHandles(baseline);
  });

  test("a GET of every forbidden form fails as blocked and the trap gets nothing", async () => {
    for (const c of forbiddenUrlCases(trap.port)) {
      await assert.rejects(
        async () => resolveChecked(guardOnly, outboundUrl(c.url).hostname),
        (e: unknown) => e instanceof OutboundError && e.kind === "blocked",
        c.name,
      );
      await assert.rejects(
        client.send({ method: "GET", url: c.url, headers: {}, headersOnly: true }),
        (e: unknown) => e instanceof OutboundError && e.kind === "blocked",
        c.name,
      );
    }
    assert.equal(trap.connections, 0, trap.requests.join("; "));
  });

  test("headersOnly answers at the headers, without waiting for an endless body", async () => {
    const open = new Set<ServerResponse>();
    const server = createServer((_req, res) => {
      open.add(res);
      res.writeHead(200, { "content-type": "audio/mpeg" });
      res.write(Buffer.alloc(1024));
    });
    server.listen(0, CIDR_INSIDE);
    await new Promise((r) => server.once("listening", r));
    try {
      const { port } = server.address() as AddressInfo;
      const started = Date.now();
      const res = await client.send({
        method: "GET",
        url: `http://cidr-in.test:${port}/a.mp3`,
        headers: {},
        headersOnly: true,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "audio/mpeg");
      assert.equal(res.bodyExcerpt, "");
      assert.ok(Date.now() - started < 2000);
    } finally {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
