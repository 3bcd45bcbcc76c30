/**
 * How the outbound client finds and reaches addresses: the hosts file before DNS, a TTL-bounded cache,
 * a resolver that drops AAAA queries, the next address after a refused connect, and no queueing for
 * pooled sockets inside the receiver's 5 s. Real servers on loopback throughout.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OutboundError } from "../src/errors.ts";
import {
  type AddressPolicy,
  type CompiledPolicy,
  compilePolicy,
  resolveChecked,
} from "../src/outbound/guard.ts";
import { createOutboundClient } from "../src/outbound/http.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { CIDR_INSIDE, PUBLIC_V4, startListener, startTestDns, type Zone } from "./helpers/ssrf.ts";

/** Allowlisted in these tests: 127.0.0.8 – 127.0.0.11, IPv6 loopback, and one name. */
const ALLOW = ["127.0.0.8/30", "::1", "listed.hosts.test"];
const REFUSING = "127.0.0.10";

const ZONE: Zone = {
  "dns-too.test": [PUBLIC_V4],
  "noaaaa.test": [CIDR_INSIDE],
  "cached.test": [CIDR_INSIDE],
  "a.cache.test": [CIDR_INSIDE],
  "b.cache.test": [CIDR_INSIDE],
  "c.cache.test": [CIDR_INSIDE],
  "long.cache.test": [CIDR_INSIDE],
  "mixed.cache.test": [PUBLIC_V4, "127.0.0.1"],
  "fallback.test": [REFUSING, CIDR_INSIDE],
  "fallback6.test": [REFUSING, "::1"],
  "fallback-blocked.test": [REFUSING, "127.0.0.1"],
};

async function outcome(policy: CompiledPolicy, host: string): Promise<string> {
  try {
    return await resolveChecked(policy, host);
  } catch (e) {
    assert.ok(e instanceof OutboundError, String(e));
    return `${e.kind}: ${e.message}`;
  }
}

const countOf = (queries: string[], name: string) => queries.filter((q) => q.endsWith(` ${name}`)).length;

describe("outbound resolution: the hosts file", () => {
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let dir: string;
  let hostsFile: string;
  let policy: CompiledPolicy;
  before(async () => {
    dns = await startTestDns(ZONE);
    dir = mkdtempSync(join(tmpdir(), "es-hosts-"));
    hostsFile = join(dir, "hosts");
    writeFileSync(
      hostsFile,
      [
        "# a comment line, then a blank one",
        "",
        "127.0.0.9\tone.hosts.test   alias.hosts.test # a trailing comment",
        "::1 v6.hosts.test",
        "127.0.0.10 both.hosts.test",
        "::1 both.hosts.test",
        "# 127.0.0.9 commented.hosts.test",
        "not-an-address bad.hosts.test",
        "10.0.0.5 private.hosts.test",
        "10.0.0.6 listed.hosts.test",
        "127.0.0.11 dns-too.test",
        "127.0.0.9 no-newline.hosts.test",
      ].join("\n"),
    );
    policy = compilePolicy({ allowlist: ALLOW, dnsServers: [dns.server], hostsFile } as AddressPolicy);
  });
  after(async () => {
    policy.resolver.cancel();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("entries resolve as the OS reads them: comments, several names a line, IPv4 and IPv6, before DNS", async () => {
    assert.equal(await outcome(policy, "one.hosts.test"), "127.0.0.9");
    assert.equal(
      await outcome(policy, "ALIAS.hosts.test."),
      "127.0.0.9",
      "second name, any case, trailing dot",
    );
    assert.equal(await outcome(policy, "v6.hosts.test"), "::1");
    assert.equal(await outcome(policy, "both.hosts.test"), "127.0.0.10", "IPv4 first, from two lines");
    assert.equal(await outcome(policy, "no-newline.hosts.test"), "127.0.0.9");
    // Like nsswitch `hosts: files dns`: a name the file lists is never asked of DNS, even DNS_SERVERS.
    assert.equal(await outcome(policy, "dns-too.test"), "127.0.0.11");
    assert.ok(!dns.queries.includes("dns-too.test"), dns.queries.join(", "));
    for (const name of ["one.hosts.test", "alias.hosts.test", "v6.hosts.test", "both.hosts.test"])
      assert.ok(!dns.queries.includes(name), `${name} went to DNS`);
    // Commented-out and malformed lines mean nothing: those names go to DNS, which does not know them.
    assert.match(await outcome(policy, "commented.hosts.test"), /^dns: could not resolve .*ENOTFOUND/);
    assert.match(await outcome(policy, "bad.hosts.test"), /^dns: could not resolve .*ENOTFOUND/);
  });

  test("a hosts-file entry for a private address is refused unless allowlisted", async () => {
    assert.match(
      await outcome(policy, "private.hosts.test"),
      /^blocked: private\.hosts\.test resolves to 10\.0\.0\.5 .*not allowed \(private\)/,
    );
    assert.equal(await outcome(policy, "listed.hosts.test"), "10.0.0.6");
  });

  test("the file is read again when it changes", async () => {
    assert.equal(await outcome(policy, "one.hosts.test"), "127.0.0.9");
    writeFileSync(hostsFile, "127.0.0.11 one.hosts.test\n127.0.0.10 new.hosts.test\n");
    await sleep(1200);
    assert.equal(await outcome(policy, "one.hosts.test"), "127.0.0.11");
    assert.equal(await outcome(policy, "new.hosts.test"), "127.0.0.10");
    assert.match(await outcome(policy, "v6.hosts.test"), /^dns: /, "gone from the file, so asked of DNS");
  });

  test("the real /etc/hosts: https://localhost/ is reached without DNS_SERVERS when allowlisted", async () => {
    const listed = readFileSync("/etc/hosts", "utf8")
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim().split(/\s+/))
      .some(([address, ...names]) => address === "127.0.0.1" && names.includes("localhost"));
    assert.ok(listed, "this machine's /etc/hosts maps localhost to 127.0.0.1");
    const baseline = handleBaseline();
    const receiver = await startReceiver();
    const client = createOutboundClient({ allowlist: ["localhost"], dnsServers: [] });
    const strict = compilePolicy({ allowlist: [], dnsServers: [] });
    try {
      const url = receiver.url.replace("127.0.0.1", "localhost");
      const res = await client.send({ method: "POST", url, headers: {}, body: "{}" });
      assert.equal(res.status, 200, res.bodyExcerpt);
      assert.equal(receiver.requests.length, 1);
      assert.match(
        await outcome(strict, "localhost"),
        /^blocked: localhost resolves to 127\.0\.0\.1 .*loopback/,
      );
    } finally {
      strict.resolver.cancel();
      await client.close();
      await receiver.close();
    }
    await assertNoOpenHandles(baseline);
  });
});

describe("outbound resolution: the cache", () => {
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let longDns: Awaited<ReturnType<typeof startTestDns>>;
  const policies: CompiledPolicy[] = [];
  const policyFor = (server: string, extra: Partial<AddressPolicy> = {}) => {
    const p = compilePolicy({ allowlist: ALLOW, dnsServers: [server], ...extra } as AddressPolicy);
    policies.push(p);
    return p;
  };
  before(async () => {
    dns = await startTestDns(ZONE);
    longDns = await startTestDns(ZONE, { ttl: 3600 });
  });
  after(async () => {
    for (const p of policies) p.resolver.cancel();
    await dns.close();
    await longDns.close();
  });

  test("within the records' TTL nothing is asked again; past it, it is; concurrent look-ups share one", async () => {
    const policy = policyFor(dns.server);
    const results = await Promise.all(Array.from({ length: 20 }, () => outcome(policy, "cached.test")));
    assert.deepEqual(new Set(results), new Set([CIDR_INSIDE]));
    assert.equal(await outcome(policy, "cached.test"), CIDR_INSIDE);
    assert.equal(countOf(dns.typedQueries, "cached.test"), 2, dns.typedQueries.join(", "));
    await sleep(1100); // the test server's TTL is 1 s
    assert.equal(await outcome(policy, "cached.test"), CIDR_INSIDE);
    assert.equal(countOf(dns.typedQueries, "cached.test"), 4, dns.typedQueries.join(", "));
  });

  test("long TTLs are capped, the cache is bounded, and cached addresses are checked every time", async () => {
    const capped = policyFor(longDns.server, { dnsCache: { maxTtlMs: 300 } } as Partial<AddressPolicy>);
    await outcome(capped, "long.cache.test");
    await outcome(capped, "long.cache.test");
    assert.equal(countOf(longDns.typedQueries, "long.cache.test"), 2);
    await sleep(400);
    await outcome(capped, "long.cache.test");
    assert.equal(countOf(longDns.typedQueries, "long.cache.test"), 4, "asked again past the cap");

    const small = policyFor(longDns.server, { dnsCache: { maxEntries: 2 } } as Partial<AddressPolicy>);
    for (const name of ["a.cache.test", "b.cache.test", "c.cache.test"]) await outcome(small, name);
    await outcome(small, "c.cache.test");
    assert.equal(countOf(longDns.typedQueries, "c.cache.test"), 2, "the newest stays");
    await outcome(small, "a.cache.test");
    assert.equal(countOf(longDns.typedQueries, "a.cache.test"), 4, "the oldest was dropped");

    const strict = policyFor(longDns.server);
    for (let i = 0; i < 2; i++)
      assert.match(await outcome(strict, "mixed.cache.test"), /^blocked: .*127\.0\.0\.1.*loopback/);
    assert.equal(countOf(longDns.typedQueries, "mixed.cache.test"), 2, "the second from the cache");
  });
});

describe("outbound resolution: slow families and unreachable addresses", () => {
  const baseline = handleBaseline();
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let listener: Awaited<ReturnType<typeof startListener>>;
  let policy: AddressPolicy;
  before(async () => {
    dns = await startTestDns(ZONE, { dropAaaa: ["noaaaa.test"] });
    listener = await startListener([CIDR_INSIDE, "::1"]);
    policy = { allowlist: ALLOW, dnsServers: [dns.server] };
  });
  after(async () => {
    await listener.close();
    await dns.close();
    await assertNoOpenHandles(baseline);
  });

  test("a resolver that drops AAAA queries: the first attempt answers well under 1 s", async () => {
    const client = createOutboundClient(policy);
    try {
      const started = performance.now();
      const res = await client.send({
        method: "GET",
        url: `http://noaaaa.test:${listener.port}/`,
        headers: {},
      });
      const took = performance.now() - started;
      assert.equal(res.status, 200);
      assert.ok(dns.typedQueries.includes("AAAA noaaaa.test"), "the AAAA query was sent and dropped");
      assert.ok(took < 500, `took ${Math.round(took)} ms`);
    } finally {
      await client.close();
    }
  });

  test("a refused connect moves on to the next checked address, across families", async () => {
    const client = createOutboundClient(policy);
    try {
      for (const [name, landed] of [
        ["fallback.test", CIDR_INSIDE],
        ["fallback6.test", "::1"],
      ] as const) {
        const started = performance.now();
        const res = await client.send({
          method: "GET",
          url: `http://${name}:${listener.port}/${name}`,
          headers: {},
        });
        assert.equal(res.status, 200, name);
        assert.ok(listener.requests.includes(`${landed} GET /${name}`), listener.requests.join("; "));
        assert.ok(performance.now() - started < 1000, name);
      }
      const before = listener.connections;
      await assert.rejects(
        client.send({ method: "GET", url: `http://fallback-blocked.test:${listener.port}/`, headers: {} }),
        (e: unknown) => e instanceof OutboundError && e.kind === "blocked" && /127\.0\.0\.1/.test(e.message),
      );
      assert.equal(listener.connections, before, "a name with one refused address is refused whole");
    } finally {
      await client.close();
    }
  });
});

describe("outbound pools: waiting for a socket is not the receiver's time", () => {
  test("80 concurrent requests to one origin (5 destinations × 16 in flight) all start at once", async () => {
    const baseline = handleBaseline();
    let active = 0;
    let peak = 0;
    // Plain HTTP: 80 TLS handshakes on a busy 2-core machine would eat the budget this test is about.
    const receiver = await startReceiver({
      tls: false,
      behaviour: (_req, res) => {
        active++;
        peak = Math.max(peak, active);
        // Slow enough that a second round behind a 64-socket pool would end past the 5 s limit.
        setTimeout(() => {
          active--;
          res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
        }, 3000);
      },
    });
    const client = createOutboundClient({ allowlist: ["127.0.0.1"], dnsServers: [] });
    try {
      const base = receiver.url.replace(/\/hook$/, "");
      const results = await Promise.allSettled(
        Array.from({ length: 80 }, (_, i) =>
          client.send({ method: "POST", url: `${base}/destination-${i % 5}`, headers: {}, body: "{}" }),
        ),
      );
      const failures = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
      assert.deepEqual(failures.slice(0, 3), [], `${failures.length} failed`);
      assert.equal(peak, 80, "every request was at the receiver at the same time");
      for (const r of results) if (r.status === "fulfilled") assert.ok(r.value.durationMs < 4500);
    } finally {
      await client.close();
      await receiver.close();
    }
    await assertNoOpenHandles(baseline);
  });
});
