import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { webhooks } from "../src/db/schema.ts";
import { type ApiStack, assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";

const HOOK = "https://127.0.0.1:9/hook";
const WH = "/api/integrations/webhooks";

describe("admin API: webhook destinations and keys", () => {
  let s: ApiStack;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false });
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("create, list, get, patch, rotate and delete a destination", async () => {
    const created = await s.api.post(WH, {
      url: HOOK,
      events: ["escalation.alert", "test.webhook"],
      description: "on-call router",
      auth: { type: "bearer", credential: "tok-123456" },
    });
    assert.equal(created.status, 201, created.text);
    const wh = created.json;
    assert.match(wh.id, /^whe_[a-z0-9]{20}$/);
    assert.match(wh.secret, /^whs_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(
      { ...wh, id: undefined, secret: undefined, created_at: undefined, updated_at: undefined },
      {
        id: undefined,
        secret: undefined,
        created_at: undefined,
        updated_at: undefined,
        url: HOOK,
        events: ["escalation.alert", "test.webhook"],
        enabled: true,
        description: "on-call router",
        auth: { type: "bearer", header_name: null, credential_set: true },
        disabled_reason: null,
        rate_limit_per_second: null,
        signature_scheme: "standard",
        ed25519_public_key: null,
        previous_secret_expires_at: null,
      },
    );
    assert.ok(!Number.isNaN(Date.parse(wh.created_at)));
    assert.ok(!created.text.includes("tok-123456"), "the credential is write-only");

    const list = await s.api.get(WH);
    assert.equal(list.status, 200);
    const listed = list.json.data.find((w: { id: string }) => w.id === wh.id);
    assert.ok(listed);
    assert.equal(listed.secret, undefined);

    const got = await s.api.get(`${WH}/${wh.id}`);
    assert.equal(got.status, 200);
    const { held, ...rest } = got.json;
    assert.deepEqual(rest, listed, "one GET shows what the list shows");
    assert.deepEqual(held, { total: 0, past_retention: 0, estimated: false }, "and what it holds");

    const patched = await s.api.patch(`${WH}/${wh.id}`, {
      url: "https://127.0.0.1:10/other",
      events: ["*"],
      description: null,
      auth: { type: "custom_header", header_name: "X-Escalation-Token", credential: "custom-abc" },
    });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.url, "https://127.0.0.1:10/other");
    assert.deepEqual(patched.json.events, ["*"]);
    assert.equal(patched.json.description, null);
    assert.deepEqual(patched.json.auth, {
      type: "custom_header",
      header_name: "X-Escalation-Token",
      credential_set: true,
    });
    assert.ok(Date.parse(patched.json.updated_at) >= Date.parse(wh.updated_at));

    // Same type without a credential keeps the stored one; `none` clears it.
    const kept = await s.api.patch(`${WH}/${wh.id}`, { auth: { type: "custom_header" } });
    assert.equal(kept.status, 200, kept.text);
    assert.deepEqual(kept.json.auth, {
      type: "custom_header",
      header_name: "X-Escalation-Token",
      credential_set: true,
    });
    const none = await s.api.patch(`${WH}/${wh.id}`, { auth: { type: "none" } });
    assert.deepEqual(none.json.auth, { type: "none", header_name: null, credential_set: false });
    const [row] = await s.stack.rt.database.db.select().from(webhooks).where(eq(webhooks.id, wh.id));
    assert.equal(row?.credentialSealed, null);

    const empty = await s.api.patch(`${WH}/${wh.id}`, {});
    assert.equal(empty.status, 200);

    const rotated = await s.api.post(`${WH}/${wh.id}/rotate-secret`);
    assert.equal(rotated.status, 200, rotated.text);
    assert.deepEqual(Object.keys(rotated.json), ["secret", "previous_secret_expires_at"]);
    assert.equal(rotated.json.previous_secret_expires_at, null);
    assert.match(rotated.json.secret, /^whs_/);
    assert.notEqual(rotated.json.secret, wh.secret);
    const rotatedEmpty = await s.api.post(`${WH}/${wh.id}/rotate-secret`, {});
    assert.equal(rotatedEmpty.status, 200);

    const del = await s.api.delete(`${WH}/${wh.id}`);
    assert.equal(del.status, 204);
    assert.equal(del.text, "");
    assertApiError(await s.api.get(`${WH}/${wh.id}`), 404, "ErrCodeNotFound");
    assertApiError(await s.api.delete(`${WH}/${wh.id}`), 404, "ErrCodeNotFound");
    assertApiError(await s.api.post(`${WH}/${wh.id}/rotate-secret`), 404, "ErrCodeNotFound");
  });

  test("defaults: enabled, no auth; each auth type stores a credential and shows only credential_set", async () => {
    const plain = await s.api.post(WH, { url: HOOK, events: ["*"] });
    assert.equal(plain.status, 201);
    assert.equal(plain.json.enabled, true);
    assert.equal(plain.json.description, null);
    assert.deepEqual(plain.json.auth, { type: "none", header_name: null, credential_set: false });
    const off = await s.api.post(WH, { url: HOOK, events: ["*"], enabled: false });
    assert.equal(off.json.enabled, false);
    for (const auth of [
      { type: "bearer", credential: "b-cred-1" },
      { type: "api_key", credential: "k-cred-2" },
      { type: "custom_header", credential: "c-cred-3", header_name: "X-Token" },
    ]) {
      const res = await s.api.post(WH, { url: HOOK, events: ["*"], auth });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.json.auth.credential_set, true);
      assert.equal(res.json.auth.header_name, auth.header_name ?? null);
      assert.ok(!res.text.includes(auth.credential));
      const [row] = await s.stack.rt.database.db.select().from(webhooks).where(eq(webhooks.id, res.json.id));
      assert.ok(row?.credentialSealed?.startsWith("es1."), "stored sealed");
      assert.ok(!row?.credentialSealed?.includes(auth.credential));
    }
  });

  test("credentials and secrets never appear in any answer after creation", async () => {
    const secrets: string[] = [];
    const ids: string[] = [];
    const creds = ["leak-bearer-7f3a9", "leak-apikey-8b2c1", "leak-custom-9d4e2"];
    const auths = [
      { type: "bearer", credential: creds[0] },
      { type: "api_key", credential: creds[1] },
      { type: "custom_header", credential: creds[2], header_name: "X-Leak" },
    ];
    for (const auth of auths) {
      const res = await s.api.post(WH, { url: HOOK, events: ["*"], auth });
      secrets.push(res.json.secret);
      ids.push(res.json.id);
    }
    const rotated = await s.api.post(`${WH}/${ids[0]}/rotate-secret`);
    secrets.push(rotated.json.secret);
    const newCred = "leak-patched-1e5f7";
    const answers = [
      await s.api.get(WH),
      ...(await Promise.all(ids.map((id) => s.api.get(`${WH}/${id}`)))),
      await s.api.patch(`${WH}/${ids[0]}`, { description: "x" }),
      await s.api.patch(`${WH}/${ids[1]}`, { auth: { type: "api_key", credential: newCred } }),
      await s.api.patch(`${WH}/${ids[2]}`, { enabled: false }),
      await s.api.patch(`${WH}/${ids[2]}`, { enabled: true }),
      await s.api.get(`${WH}/${ids[1]}`),
      await s.api.get(`${WH}/${ids[0]}/deliveries`),
      await s.api.get(WH),
      await s.api.get("/api/keys"),
    ];
    for (const res of answers) {
      assert.ok(res.status < 300, res.text);
      for (const secret of [...secrets, ...creds, newCred, s.api.token]) {
        assert.ok(!res.text.includes(secret), `answer leaks a secret: ${res.text.slice(0, 200)}`);
      }
    }
    const logs = s.stack.logs.join("\n");
    for (const secret of [...secrets, ...creds, newCred])
      assert.ok(!logs.includes(secret), "logs leak a secret");
  });

  test("PATCH auth rules: a new type needs its credential; header_name only for custom_header", async () => {
    const wh = (
      await s.api.post(WH, { url: HOOK, events: ["*"], auth: { type: "bearer", credential: "abc-1" } })
    ).json;
    assertApiError(
      await s.api.patch(`${WH}/${wh.id}`, { auth: { type: "api_key" } }),
      400,
      "ErrCodeMissingRequiredField",
      "body.auth.credential: required when auth.type is api_key",
    );
    assertApiError(
      await s.api.patch(`${WH}/${wh.id}`, { auth: { type: "custom_header", credential: "x-1" } }),
      400,
      "ErrCodeMissingRequiredField",
      "body.auth.header_name: required when auth.type is custom_header",
    );
    assertApiError(
      await s.api.patch(`${WH}/${wh.id}`, { auth: { type: "bearer", header_name: "X-A" } }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.auth.header_name",
    );
    const same = await s.api.patch(`${WH}/${wh.id}`, { auth: { type: "bearer" } });
    assert.equal(same.status, 200);
    assert.equal(same.json.auth.credential_set, true);
    // A refused PATCH changes nothing.
    assert.deepEqual((await s.api.get(`${WH}/${wh.id}`)).json.auth, {
      type: "bearer",
      header_name: null,
      credential_set: true,
    });
  });

  const invalidCreates: [string, unknown, string, string][] = [
    ["missing url", { events: ["*"] }, "ErrCodeMissingRequiredField", "body.url: required"],
    ["missing events", { url: HOOK }, "ErrCodeMissingRequiredField", "body.events: required"],
    [
      "empty events",
      { url: HOOK, events: [] },
      "ErrCodeInvalidFieldFormat",
      "body.events: must not be empty",
    ],
    [
      "unknown event",
      { url: HOOK, events: ["survey.response.created"] },
      "ErrCodeInvalidFieldFormat",
      "body.events[0]",
    ],
    [
      "* with others",
      { url: HOOK, events: ["*", "test.webhook"] },
      "ErrCodeInvalidFieldFormat",
      "body.events",
    ],
    [
      "duplicate events",
      { url: HOOK, events: ["test.webhook", "test.webhook"] },
      "ErrCodeInvalidFieldFormat",
      "body.events",
    ],
    [
      "events not a list",
      { url: HOOK, events: "*" },
      "ErrCodeInvalidFieldFormat",
      "body.events: must be an array",
    ],
    [
      "url not a string",
      { url: 42, events: ["*"] },
      "ErrCodeInvalidFieldFormat",
      "body.url: must be a string",
    ],
    ["url not a URL", { url: "hooks.example.com", events: ["*"] }, "ErrCodeInvalidFieldFormat", "body.url"],
    [
      "http url",
      { url: "http://hooks.example.com/x", events: ["*"] },
      "ErrCodeInvalidFieldFormat",
      "body.url: must start with https://",
    ],
    ["ftp url", { url: "ftp://hooks.example.com/x", events: ["*"] }, "ErrCodeInvalidFieldFormat", "body.url"],
    ["private IP", { url: "https://10.1.2.3/x", events: ["*"] }, "ErrCodeInvalidFieldFormat", "body.url"],
    [
      "metadata IP",
      { url: "https://169.254.169.254/latest", events: ["*"] },
      "ErrCodeInvalidFieldFormat",
      "body.url",
    ],
    [
      "mapped private IP",
      { url: "https://[::ffff:192.168.0.1]/x", events: ["*"] },
      "ErrCodeInvalidFieldFormat",
      "body.url",
    ],
    [
      "user info",
      { url: "https://u:p@hooks.example.com/x", events: ["*"] },
      "ErrCodeInvalidFieldFormat",
      "body.url",
    ],
    [
      "url too long",
      { url: `https://hooks.example.com/${"a".repeat(2100)}`, events: ["*"] },
      "ErrCodeInvalidFieldFormat",
      "body.url",
    ],
    [
      "enabled as string",
      { url: HOOK, events: ["*"], enabled: "true" },
      "ErrCodeInvalidFieldFormat",
      "body.enabled: must be a boolean",
    ],
    [
      "description too long",
      { url: HOOK, events: ["*"], description: "d".repeat(501) },
      "ErrCodeInvalidFieldFormat",
      "body.description",
    ],
    [
      "unknown field",
      { url: HOOK, events: ["*"], secret: "whs_mine" },
      "ErrCodeInvalidFieldFormat",
      "body.secret: unknown field",
    ],
    [
      "auth type unknown",
      { url: HOOK, events: ["*"], auth: { type: "basic" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.type",
    ],
    [
      "auth without type",
      { url: HOOK, events: ["*"], auth: {} },
      "ErrCodeMissingRequiredField",
      "body.auth.type: required",
    ],
    [
      "bearer without credential",
      { url: HOOK, events: ["*"], auth: { type: "bearer" } },
      "ErrCodeMissingRequiredField",
      "body.auth.credential: required when auth.type is bearer",
    ],
    [
      "api_key without credential",
      { url: HOOK, events: ["*"], auth: { type: "api_key" } },
      "ErrCodeMissingRequiredField",
      "body.auth.credential",
    ],
    [
      "custom_header without header_name",
      { url: HOOK, events: ["*"], auth: { type: "custom_header", credential: "c" } },
      "ErrCodeMissingRequiredField",
      "body.auth.header_name: required when auth.type is custom_header",
    ],
    [
      "reserved header",
      {
        url: HOOK,
        events: ["*"],
        auth: { type: "custom_header", credential: "c", header_name: "Authorization" },
      },
      "ErrCodeInvalidFieldFormat",
      "body.auth.header_name",
    ],
    [
      "reserved header, other case",
      {
        url: HOOK,
        events: ["*"],
        auth: { type: "custom_header", credential: "c", header_name: "webhook-signature" },
      },
      "ErrCodeInvalidFieldFormat",
      "body.auth.header_name",
    ],
    [
      "header name with space",
      { url: HOOK, events: ["*"], auth: { type: "custom_header", credential: "c", header_name: "X Token" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.header_name: must be a valid HTTP header name",
    ],
    [
      "header name with colon",
      { url: HOOK, events: ["*"], auth: { type: "custom_header", credential: "c", header_name: "X-A:" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.header_name",
    ],
    [
      "credential with CRLF",
      { url: HOOK, events: ["*"], auth: { type: "bearer", credential: "abc\r\nX-Evil: 1" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.credential",
    ],
    [
      "credential with LF",
      { url: HOOK, events: ["*"], auth: { type: "bearer", credential: "abc\ndef" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.credential",
    ],
    [
      "credential too long",
      { url: HOOK, events: ["*"], auth: { type: "bearer", credential: "c".repeat(4097) } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.credential: must be at most 4096 characters",
    ],
    [
      "credential empty",
      { url: HOOK, events: ["*"], auth: { type: "bearer", credential: "" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.credential",
    ],
    [
      "credential padded",
      { url: HOOK, events: ["*"], auth: { type: "bearer", credential: " abc" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.credential",
    ],
    [
      "credential with none",
      { url: HOOK, events: ["*"], auth: { type: "none", credential: "abc" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.credential: not allowed when auth.type is none",
    ],
    [
      "header name with bearer",
      { url: HOOK, events: ["*"], auth: { type: "bearer", credential: "abc", header_name: "X-A" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.header_name",
    ],
    [
      "unknown auth field",
      { url: HOOK, events: ["*"], auth: { type: "none", token: "x" } },
      "ErrCodeInvalidFieldFormat",
      "body.auth.token: unknown field",
    ],
    ["body is a list", [{ url: HOOK }], "ErrCodeInvalidFieldFormat", "body: must be an object"],
  ];

  for (const [name, body, code, field] of invalidCreates) {
    test(`create refuses: ${name}`, async () => {
      assertApiError(await s.api.post(WH, body), 400, code, field);
    });
  }

  test("PATCH refuses bad fields and unknown ids; the credential never appears in the error", async () => {
    const wh = (await s.api.post(WH, { url: HOOK, events: ["*"] })).json;
    const cases: [unknown, string, string][] = [
      [{ url: 5 }, "ErrCodeInvalidFieldFormat", "body.url"],
      [{ url: "http://hooks.example.com" }, "ErrCodeInvalidFieldFormat", "body.url"],
      [{ enabled: null }, "ErrCodeInvalidFieldFormat", "body.enabled"],
      [{ events: [] }, "ErrCodeInvalidFieldFormat", "body.events"],
      [{ events: ["nope"] }, "ErrCodeInvalidFieldFormat", "body.events[0]"],
      [{ id: "whe_other" }, "ErrCodeInvalidFieldFormat", "body.id: unknown field"],
      [
        { auth: { type: "bearer", credential: "sekrit\nvalue" } },
        "ErrCodeInvalidFieldFormat",
        "body.auth.credential",
      ],
    ];
    for (const [body, code, field] of cases) {
      const res = await s.api.patch(`${WH}/${wh.id}`, body);
      assertApiError(res, 400, code, field);
      assert.ok(!res.text.includes("sekrit"));
    }
    assertApiError(await s.api.patch(`${WH}/whe_doesnotexist`, { enabled: true }), 404, "ErrCodeNotFound");
  });

  test("admin API keys: list, create (token shown once), use, revoke (refused at once)", async () => {
    const list = await s.api.get("/api/keys");
    assert.equal(list.status, 200);
    assert.ok(list.json.data.length >= 1);
    for (const k of list.json.data)
      assert.deepEqual(Object.keys(k).sort(), ["created_at", "id", "name", "scope"]);
    const unnamed = await s.api.post("/api/keys", {});
    assert.equal(unnamed.status, 201, unnamed.text);
    assert.deepEqual([unnamed.json.name, unnamed.json.scope], ["admin key", "admin"]);
    assert.equal((await s.api.delete(`/api/keys/${unnamed.json.id}`)).status, 204);

    const created = await s.api.post("/api/keys", { name: "terraform" });
    assert.equal(created.status, 201, created.text);
    assert.match(created.json.id, /^key_/);
    assert.equal(created.json.name, "terraform");
    assert.match(created.json.api_key, /^esk_/);

    const second = s.api.as(created.json.api_key);
    const me = await second.get("/api/keys/current");
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(
      [me.json.id, me.json.name, me.json.scope, me.json.organization.id],
      [created.json.id, "terraform", "admin", s.stack.org.id],
    );
    const seen = await second.get("/api/keys");
    assert.equal(seen.status, 200);
    assert.ok(seen.json.data.some((k: { id: string }) => k.id === created.json.id));
    assert.ok(!seen.text.includes(created.json.api_key));

    const revoked = await s.api.delete(`/api/keys/${created.json.id}`);
    assert.equal(revoked.status, 204);
    assertApiError(await second.get("/api/keys"), 401, "ErrCodeUnauthorized");
    assertApiError(await second.get(WH), 401, "ErrCodeUnauthorized");
    assert.ok(
      !(await s.api.get("/api/keys")).json.data.some((k: { id: string }) => k.id === created.json.id),
    );
    assertApiError(await s.api.delete(`/api/keys/${created.json.id}`), 404, "ErrCodeNotFound");
    assertApiError(await s.api.delete("/api/keys/key_nope"), 404, "ErrCodeNotFound");
  });

  test("admin API keys: validation", async () => {
    assertApiError(
      await s.api.post("/api/keys", { scope: "owner" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.scope",
    );
    assertApiError(
      await s.api.post("/api/keys", { name: "" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.name",
    );
    assertApiError(
      await s.api.post("/api/keys", { name: "   " }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.name",
    );
    assertApiError(await s.api.post("/api/keys", { name: 7 }), 400, "ErrCodeInvalidFieldFormat", "body.name");
    assertApiError(
      await s.api.post("/api/keys", { name: "n".repeat(101) }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.name",
    );
    assertApiError(
      await s.api.post("/api/keys", { name: "a", org_id: "org_x" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.org_id: unknown field",
    );
    assertApiError(
      await s.api.get("/api/keys?limit=2"),
      400,
      "ErrCodeInvalidFieldFormat",
      "query.limit: unknown field",
    );
    assertApiError(await s.api.get("/api/keys?page=0"), 400, "ErrCodeInvalidFieldFormat", "query.page");
  });

  test("authentication: missing, malformed, unknown and revoked keys get 401", async () => {
    const noAuth = await s.api.get(WH, { token: null });
    assertApiError(noAuth, 401, "ErrCodeUnauthorized", "headers.authorization");
    assert.match(String(noAuth.headers["www-authenticate"]), /^Bearer/);
    for (const authorization of [
      "Basic dXNlcjpwYXNz",
      "Bearer",
      "Bearer ",
      `Bearer ${"x".repeat(300)}`,
      "esk_missing_scheme",
      `Bearer ${s.api.token}x`,
      `Bearer ${s.api.token.slice(0, -1)}`,
    ]) {
      assertApiError(
        await s.api.get(WH, { token: null, headers: { authorization } }),
        401,
        "ErrCodeUnauthorized",
      );
    }
    // The scheme is case-insensitive (RFC 9110).
    assert.equal(
      (await s.api.get(WH, { token: null, headers: { authorization: `bearer ${s.api.token}` } })).status,
      200,
    );
  });
});

describe("admin API with ALLOW_HTTP_DESTINATIONS", () => {
  let s: ApiStack;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false, env: { ALLOW_HTTP_DESTINATIONS: "true" } });
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("http:// is accepted, private addresses still are not", async () => {
    const ok = await s.api.post(WH, { url: "http://127.0.0.1:9/hook", events: ["*"] });
    assert.equal(ok.status, 201, ok.text);
    assertApiError(
      await s.api.post(WH, { url: "http://192.168.1.10/hook", events: ["*"] }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.url",
    );
  });
});
