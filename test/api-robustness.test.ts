import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { toApiError } from "../src/api/errors.ts";
import { startServer } from "../src/api/server.ts";
import { createLogger } from "../src/log.ts";
import { createOrganization } from "../src/orgs.ts";
import { openRuntime } from "../src/runtime.ts";
import {
  type ApiResponse,
  type ApiStack,
  assertApiError,
  secondOrganization,
  startApiStack,
} from "./helpers/api.ts";
import { createTestDatabase, testConfig, testEnv } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startPrivateRedis } from "./helpers/redis.ts";

const WH = "/api/integrations/webhooks";

/** Every operation of the admin API and health checks; the OpenAPI document must list each one. */
const OPERATIONS = [
  "get /healthz",
  "get /readyz",
  "get /api/keys",
  "post /api/keys",
  "delete /api/keys/{id}",
  "get /api/integrations/webhooks",
  "post /api/integrations/webhooks",
  "get /api/integrations/webhooks/{id}",
  "patch /api/integrations/webhooks/{id}",
  "delete /api/integrations/webhooks/{id}",
  "post /api/integrations/webhooks/{id}/rotate-secret",
  "post /api/integrations/webhooks/{id}/signing-key",
  "delete /api/integrations/webhooks/{id}/signing-key",
  "post /api/integrations/webhooks/{id}/test",
  "get /api/integrations/webhooks/{id}/deliveries",
  "get /api/integrations/webhooks/{id}/deliveries/{delivery_id}",
  "post /api/integrations/webhooks/{id}/deliveries/{delivery_id}/retry",
  "get /api/automations",
  "post /api/automations",
  "get /api/automations/{id}",
  "patch /api/automations/{id}",
  "delete /api/automations/{id}",
  "get /webhooks/{id}/public-key",
];

/** Sends raw bytes and reads the whole answer (the server closes the connection after a parse error). */
async function rawRequest(url: string, bytes: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      data += c;
    });
    socket.on("error", reject);
    socket.on("close", () => {
      const [head = "", body = ""] = data.split("\r\n\r\n");
      resolve({ status: Number(head.split(" ")[1]), body });
    });
    socket.setTimeout(5000, () => socket.destroy());
  });
}

/** A small deterministic PRNG (mulberry32), so a failing input can be reproduced from the seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick };
}

describe("admin API: errors, documents, health and limits", () => {
  let s: ApiStack;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false });
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("/docs/json is an OpenAPI 3 document listing every route, with error and security details", async () => {
    const res = await s.api.get("/docs/json", { token: null });
    assert.equal(res.status, 200);
    const doc = JSON.parse(res.text);
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.ok(doc.info.title);
    const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m} ${p}`),
    );
    // Other parts of the product add their own routes to the same document; these are the admin API's.
    for (const op of OPERATIONS) assert.ok(listed.includes(op), `${op} is listed`);
    for (const op of OPERATIONS) {
      const [m, p] = op.split(" ") as [string, string];
      const o = doc.paths[p][m];
      assert.ok(o.responses["4XX"], `${op} documents its errors`);
      assert.ok(o.summary, `${op} has a summary`);
      if (p.startsWith("/api/")) assert.deepEqual(o.security, [{ adminApiKey: [] }], `${op} security`);
    }
    assert.deepEqual(doc.components.securitySchemes.adminApiKey, {
      type: "http",
      scheme: "bearer",
      description: "An admin API key (`esk_…`).",
    });
    assert.equal(doc.paths["/api/integrations/webhooks/{id}/rotate-secret"].post.requestBody.required, false);
    assert.equal(doc.paths["/api/integrations/webhooks"].post.requestBody.required, true);
    const test = doc.paths["/api/integrations/webhooks/{id}/test"].post;
    assert.match(test.description, /does not subscribe/);
    const ui = await s.api.get("/docs", { token: null });
    assert.ok(ui.status === 200 || ui.status === 302, `docs UI: ${ui.status}`);
  });

  test("healthz and readyz", async () => {
    const h = await s.api.get("/healthz", { token: null });
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: "ok" });
    const r = await s.api.get("/readyz", { token: null });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: "ok" });
  });

  test("unknown routes, bad content, oversized and malformed requests answer 4xx in the contract's shape", async () => {
    assertApiError(await s.api.get("/api/nothing-here"), 404, "ErrCodeNotFound");
    assertApiError(await s.api.get("/nothing"), 404, "ErrCodeNotFound");
    assertApiError(await s.api.request("PUT", WH, { body: {} }), 404, "ErrCodeNotFound");
    const json = { "content-type": "application/json" };
    assertApiError(
      await s.api.request("POST", WH, { raw: '{"url": "https://x", ', headers: json }),
      400,
      "ErrCodeBadRequest",
      "body",
    );
    assertApiError(
      await s.api.request("POST", WH, { raw: "", headers: json }),
      400,
      "ErrCodeBadRequest",
      "body",
    );
    assertApiError(
      await s.api.request("POST", WH, { raw: '{"__proto__": {"admin": true}}', headers: json }),
      400,
      "ErrCodeBadRequest",
    );
    assertApiError(
      await s.api.request("POST", WH, { raw: "url=https://x", headers: { "content-type": "text/plain" } }),
      415,
      "ErrCodeBadRequest",
      "content-type",
    );
    assertApiError(
      await s.api.request("POST", WH, {
        raw: "url=x",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      }),
      415,
      "ErrCodeBadRequest",
    );
    const big = JSON.stringify({
      url: "https://x.example.com",
      events: ["*"],
      description: "d".repeat(1_100_000),
    });
    assertApiError(
      await s.api.request("POST", WH, { raw: big, headers: json }),
      413,
      "ErrCodePayloadTooLarge",
    );
    assertApiError(await s.api.get(`${WH}/${"x".repeat(150)}`), 414, "ErrCodeBadRequest");
    assertApiError(await s.api.get(`${WH}/%E0%A4%A`), 400, "ErrCodeBadRequest");

    // The referenceID leads support to the log line with the whole story.
    const refused = await s.api.post(WH, { url: 5, events: ["*"] });
    const line = s.stack.logs.find(
      (l) => l.includes(`"referenceID":"${refused.json.referenceID}"`) && l.includes("body.url"),
    );
    assert.ok(line, "the error is logged under its referenceID");

    const garbled = await rawRequest(s.api.url, "GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n");
    assert.equal(garbled.status, 400);
    assert.equal(JSON.parse(garbled.body).code, "ErrCodeBadRequest");
    const huge = await rawRequest(
      s.api.url,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    assert.equal(huge.status, 431);
    assert.equal(JSON.parse(huge.body).code, "ErrCodeBadRequest");
  });

  test("300 generated bad bodies, headers and query strings: never a 5xx, every 4xx with a code", async () => {
    const wh = (await s.api.post(WH, { url: "https://127.0.0.1:9/f", events: ["*"], enabled: false })).json;
    const sent = (await s.api.post(`${WH}/${wh.id}/test`, { event: "test.webhook" })).json;
    const aut = (
      await s.api.post("/api/automations", {
        name: "f",
        trigger: { min_escalation_level: "low" },
        webhook_ids: [wh.id],
      })
    ).json;
    const rnd = prng(20260627);

    const strings = [
      "",
      " ",
      "x",
      "💥🔥",
      "\u0000",
      "\r\n",
      "\u202e",
      "__proto__",
      "constructor",
      "'; drop table webhooks; --",
      "../../etc/passwd",
      "https://10.0.0.1/",
      "http://[::1]/",
      "https://127.0.0.1:9/ok",
      "whe_nope",
      "escalation.alert",
      "*",
      "high",
      "custom_header",
      "%00",
      "a".repeat(5000),
    ];
    const keys = [
      "url",
      "events",
      "enabled",
      "description",
      "auth",
      "type",
      "credential",
      "header_name",
      "name",
      "active",
      "filter",
      "trigger",
      "webhook_ids",
      "metadata",
      "field",
      "op",
      "value",
      "event",
      "integration_ids",
      "types",
      "min_escalation_level",
      "__proto__",
      "constructor",
      "",
      "💥",
    ];
    const value = (depth: number): unknown => {
      switch (rnd.int(depth > 2 ? 6 : 9)) {
        case 0:
          return null;
        case 1:
          return rnd.next() < 0.5;
        case 2:
          return rnd.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 4096, 100, 101]);
        case 3:
        case 4:
          return rnd.pick(strings);
        case 5:
          return rnd.pick(["low", "eq", "in", "gt", "exists", "bearer", "none", "REVIEW"]);
        case 6:
        case 7:
          return Object.fromEntries(
            Array.from({ length: rnd.int(5) }, () => [rnd.pick(keys), value(depth + 1)] as const),
          );
        default:
          return Array.from({ length: rnd.int(4) }, () => value(depth + 1));
      }
    };
    const valid: Record<string, () => Record<string, unknown>> = {
      [`POST ${WH}`]: () => ({
        url: "https://127.0.0.1:9/ok",
        events: ["*"],
        auth: { type: "bearer", credential: "c" },
      }),
      [`PATCH ${WH}/${wh.id}`]: () => ({ description: "d", auth: { type: "none" } }),
      [`POST ${WH}/${wh.id}/test`]: () => ({ event: "test.webhook" }),
      "POST /api/automations": () => ({
        name: "n",
        trigger: { min_escalation_level: "low" },
        webhook_ids: [wh.id],
        filter: { metadata: [{ field: "a", op: "eq", value: "b" }] },
      }),
      [`PATCH /api/automations/${aut.id}`]: () => ({ trigger: { min_escalation_level: "high" } }),
      "POST /api/keys": () => ({ name: "k" }),
      [`POST ${WH}/${wh.id}/rotate-secret`]: () => ({ grace_period_seconds: 30 }),
      [`POST ${WH}/${wh.id}/signing-key`]: () => ({}),
      [`POST ${WH}/${wh.id}/deliveries/${sent.delivery_id}/retry`]: () => ({}),
    };
    const gets = [
      WH,
      `${WH}/${wh.id}`,
      `${WH}/${wh.id}/deliveries`,
      `${WH}/${wh.id}/deliveries/${sent.delivery_id}`,
      "/api/automations",
      `/api/automations/${aut.id}`,
      "/api/keys",
      "/readyz",
    ];
    /** Mutates one field somewhere in a valid body: the inputs that get past the first checks. */
    const mutate = (body: Record<string, unknown>): unknown => {
      const path: Record<string, unknown>[] = [body];
      let node: unknown = body;
      while (node && typeof node === "object" && !Array.isArray(node) && rnd.next() < 0.6) {
        const ks = Object.keys(node as object);
        if (ks.length === 0) break;
        const next = (node as Record<string, unknown>)[rnd.pick(ks)];
        if (!next || typeof next !== "object" || Array.isArray(next)) break;
        path.push(next as Record<string, unknown>);
        node = next;
      }
      const target = path[path.length - 1] as Record<string, unknown>;
      const ks = Object.keys(target);
      if (rnd.next() < 0.3 && ks.length > 0) delete target[rnd.pick(ks)];
      else target[rnd.next() < 0.7 && ks.length > 0 ? rnd.pick(ks) : rnd.pick(keys)] = value(1);
      return body;
    };
    const queries = [
      "page=-1",
      "per_page=1e3",
      "page=0x10",
      "status[]=held",
      "status=held&status=failed",
      "from=%ZZ",
      "from=2026-02-30T00:00:00Z",
      "to=2026-01-01",
      "a[b]=c",
      "=",
      "&&&",
      `page=${"9".repeat(400)}`,
      "per_page=%F0%9F%92%A5",
      "__proto__=1",
      "page=1&per_page=5",
    ];
    const rawBodies = [
      "{",
      "[1,2",
      "nul",
      '{"a":1}garbage',
      '{"constructor":{"prototype":{"x":1}}}',
      `${"[".repeat(5000)}${"]".repeat(5000)}`,
      '"just a string"',
      "12345",
      "true",
      "\u0000\u0001",
    ];
    const contentTypes = [
      "application/json",
      "application/json; charset=utf-8",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/xml",
      "application/vnd.api+json",
    ];
    const authorizations = [
      "Basic Zm9vOmJhcg==",
      "Bearer esk_guess",
      "Bearer",
      `Bearer ${"a".repeat(400)}`,
      "token",
      `bearer  ${s.api.token}`,
    ];

    let count = 0;
    const problems: string[] = [];
    const statuses = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      let method: string;
      let path: string;
      const options: { raw?: string; headers: Record<string, string>; token?: string | null } = {
        headers: {},
      };
      const kind = rnd.int(6);
      if (kind <= 2) {
        const route = rnd.pick(Object.keys(valid));
        [method, path] = route.split(" ") as [string, string];
        const body = kind === 0 ? mutate((valid[route] as () => Record<string, unknown>)()) : value(0);
        options.raw = JSON.stringify(body);
        options.headers["content-type"] = "application/json";
      } else if (kind === 3) {
        [method, path] = rnd.pick(Object.keys(valid)).split(" ") as [string, string];
        options.raw = rnd.pick(rawBodies);
        options.headers["content-type"] = rnd.pick(contentTypes);
      } else if (kind === 4) {
        method = "GET";
        path = `${rnd.pick(gets)}?${rnd.pick(queries)}`;
      } else {
        method = rnd.pick(["GET", "POST", "PATCH", "DELETE"]);
        path = rnd.pick([
          ...gets,
          `${WH}/${encodeURIComponent(rnd.pick(strings)) || "x"}`,
          "/api/keys/key_x",
        ]);
        options.headers.authorization = rnd.pick(authorizations);
        options.token = null;
        if (method !== "GET" && rnd.next() < 0.5) {
          options.raw = JSON.stringify(value(0));
          options.headers["content-type"] = "application/json";
        }
      }
      const res: ApiResponse = await s.api.request(method, path, options);
      count++;
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const label = `#${i} ${method} ${path.slice(0, 80)} ${String(options.raw ?? "").slice(0, 80)} → ${res.status} ${res.text.slice(0, 200)}`;
      if (res.status >= 500) problems.push(label);
      else if (res.status >= 400) {
        if (
          typeof res.json?.code !== "string" ||
          typeof res.json?.msg !== "string" ||
          !res.json?.referenceID
        ) {
          problems.push(`no error body: ${label}`);
        }
      }
    }
    assert.ok(count >= 200);
    assert.deepEqual(problems, []);
    // The generator reaches past the first checks: validation, parsing, auth and successes all occur.
    for (const status of [200, 400, 401, 415]) {
      assert.ok((statuses.get(status) ?? 0) > 0, `no ${status} among ${JSON.stringify([...statuses])}`);
    }
  });
});

describe("error mapping", () => {
  test("an unexpected fault is a 500 ErrCodeInternal that hides its details; lost connections are 503", () => {
    const internal = toApiError(new Error("column secret_stuff does not exist"));
    assert.equal(internal.statusCode, 500);
    assert.equal(internal.code, "ErrCodeInternal");
    assert.ok(!internal.message.includes("secret_stuff"));
    for (const code of ["ECONNREFUSED", "CONNECTION_ENDED", "CONNECT_TIMEOUT", "08006", "57P01"]) {
      const err = Object.assign(new Error("x"), { code });
      assert.equal(toApiError(new Error("wrapped", { cause: err })).statusCode, 503, code);
    }
    assert.equal(
      toApiError(new Error("Stream isn't writeable and enableOfflineQueue options is false")).statusCode,
      503,
    );
    assert.equal(toApiError(Object.assign(new Error("dup"), { code: "23505" })).statusCode, 500);
  });
});

describe("admin API rate limit", () => {
  let s: ApiStack;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false, env: { ADMIN_RATE_LIMIT_PER_MINUTE: "5" } });
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("over the limit: 429 ErrCodeRateLimited with Retry-After, per key, counted in Redis under the queue prefix", async () => {
    for (let i = 0; i < 5; i++) assert.equal((await s.api.get("/api/keys")).status, 200);
    const limited = await s.api.get(WH);
    assertApiError(limited, 429, "ErrCodeRateLimited");
    const retryAfter = Number(limited.headers["retry-after"]);
    assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${limited.headers["retry-after"]}`);
    // Another key of the same organization has its own budget; health checks have none.
    const other = await s.stack.rt.database.db.transaction(async (tx) => {
      const { createAdminKey } = await import("../src/orgs.ts");
      return createAdminKey(tx, s.stack.org.id, "second");
    });
    assert.equal((await s.api.as(other.token).get("/api/keys")).status, 200);
    assert.equal((await s.api.get("/healthz", { token: null })).status, 200);
    const keys = await s.stack.rt.redis.keys(`${s.stack.config.queuePrefix}:ratelimit:admin:*`);
    assert.equal(keys.length, 2);
    assert.ok(
      keys.every((k) => !k.includes(s.api.token) && !k.includes(other.token)),
      "keyed by hash, not token",
    );
  });

  test("minting keys does not multiply the budget: an organization gets three times the per-key limit", async () => {
    const { createAdminKey } = await import("../src/orgs.ts");
    const org = await secondOrganization(s.stack, `rl-${Date.now().toString(36)}`);
    const keys = await s.stack.rt.database.db.transaction(async (tx) => {
      const made = [];
      for (let i = 0; i < 3; i++) made.push((await createAdminKey(tx, org.id, `k${i}`)).token);
      return made;
    });
    const tokens = [org.adminApiKey, ...keys];
    const elsewhereFirst = await secondOrganization(s.stack, `rl3-${Date.now().toString(36)}`);
    // Three keys spend five requests each: fifteen, the organization's whole budget.
    for (const token of tokens.slice(0, 3))
      for (let i = 0; i < 5; i++) assert.equal((await s.api.as(token).get("/api/keys")).status, 200);
    const fourth = await s.api.as(tokens[3] as string).get("/api/keys");
    assertApiError(fourth, 429, "ErrCodeRateLimited", "per organization");
    assert.ok(Number(fourth.headers["retry-after"]) > 0);
    // Writes a read-only key is refused count too: they cost a key lookup like any other request.
    const readOnly = await s.stack.rt.database.db.transaction((tx) =>
      createAdminKey(tx, elsewhereFirst.id, "ro", "read-only"),
    );
    for (let i = 0; i < 5; i++)
      assertApiError(await s.api.as(readOnly.token).post("/api/keys", {}), 403, "ErrCodeForbidden");
    assertApiError(await s.api.as(readOnly.token).post("/api/keys", {}), 429, "ErrCodeRateLimited");
    // Another organization is not held back by this one.
    const elsewhere = await secondOrganization(s.stack, `rl2-${Date.now().toString(36)}`);
    assert.equal((await s.api.as(elsewhere.adminApiKey).get("/api/keys")).status, 200);
  });
});

describe("admin API when Postgres or Redis is unreachable", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("Redis gone: admin calls answer 503 ErrCodeUnavailable, readyz 503, healthz 200", async () => {
    const redis = await startPrivateRedis();
    const database = await createTestDatabase();
    const config = testConfig(testEnv(database.url, { REDIS_URL: redis.url, HOST: "127.0.0.1", PORT: "0" }));
    const rt = openRuntime(config, createLogger("silent"));
    const org = await rt.database.db.transaction((tx) => createOrganization(tx, "redis-gone"));
    const server = await startServer(rt);
    try {
      const headers = { authorization: `Bearer ${org.adminApiKey}` };
      assert.equal((await fetch(`${server.url}/api/keys`, { headers })).status, 200);
      await redis.stop();
      const res = await fetch(`${server.url}/api/integrations/webhooks`, { headers });
      assert.equal(res.status, 503);
      const body = (await res.json()) as { code: string; referenceID: string };
      assert.equal(body.code, "ErrCodeUnavailable");
      assert.ok(body.referenceID);
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { code: string }).code, "ErrCodeUnavailable");
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      await server.close();
      await rt.close();
      await database.drop();
    }
  });

  test("Postgres gone: admin calls answer 503 ErrCodeUnavailable, readyz 503 within about 2 s", async () => {
    const config = testConfig(
      testEnv("postgres://postgres@127.0.0.1:1/none", { HOST: "127.0.0.1", PORT: "0" }),
    );
    const rt = openRuntime(config, createLogger("silent"));
    const server = await startServer(rt);
    try {
      const res = await fetch(`${server.url}/api/keys`, {
        headers: { authorization: "Bearer esk_whatever" },
      });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { code: string }).code, "ErrCodeUnavailable");
      const started = Date.now();
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.ok(Date.now() - started < 3000);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      await server.close();
      await rt.close();
    }
  });
});
