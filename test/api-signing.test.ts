import assert from "node:assert/strict";
import { createPublicKey, verify as cryptoVerify } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { webhooks } from "../src/db/schema.ts";
import { MAX_GRACE_SECONDS } from "../src/destinations/signing.ts";
import { verifyWebhook } from "../src/receiver/index.ts";
import {
  type ApiClient,
  type ApiStack,
  assertApiError,
  secondOrganization,
  startApiStack,
} from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type ReceivedRequest, type Receiver, startReceiver } from "./helpers/receiver.ts";
import { seed004VerifyWebhook } from "./helpers/seed004.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";
// A trailing slash, to check that public_key_url is built without a double one.
const PUBLIC_URL = "https://shield.example.test/";

function signatureParts(req: ReceivedRequest): string[] {
  return String(req.headers["webhook-signature"]).split(" ");
}

/** Whether the kit accepts `req` with exactly these secrets. */
function kitAccepts(req: ReceivedRequest, secrets: string[]): boolean {
  return verifyWebhook({ body: req.body, headers: req.headers, secrets }).ok;
}

/** The `v1a,` signature of `req` checked by node:crypto alone, with a base64 raw 32-byte public key. */
function ed25519Verifies(req: ReceivedRequest, publicKey: string): boolean {
  const v1a = signatureParts(req).find((p) => p.startsWith("v1a,"));
  if (!v1a) return false;
  const raw = Buffer.from(publicKey, "base64");
  assert.equal(raw.length, 32, "a raw Ed25519 public key is 32 bytes");
  const key = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
    format: "jwk",
  });
  const signed = `${req.headers["webhook-id"]}.${req.headers["webhook-timestamp"]}.${req.body}`;
  return cryptoVerify(null, Buffer.from(signed, "utf8"), key, Buffer.from(v1a.slice(4), "base64"));
}

describe("admin API: signature schemes, secret rotation with grace, Ed25519 keys", () => {
  let s: ApiStack;
  const receivers: Receiver[] = [];
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ env: { PUBLIC_URL } });
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  async function receiver(): Promise<Receiver> {
    const r = await startReceiver();
    receivers.push(r);
    return r;
  }

  async function destination(url: string, extra: Record<string, unknown> = {}, api: ApiClient = s.api) {
    const res = await api.post(WH, { url, events: ["escalation.alert"], ...extra });
    assert.equal(res.status, 201, res.text);
    return res.json as { id: string; secret: string; signature_scheme: string };
  }

  /** Sends a test alert to the destination and returns the request its receiver got for it. */
  async function deliver(webhookId: string, r: Receiver): Promise<ReceivedRequest> {
    const sent = await s.api.post(`${WH}/${webhookId}/test`, { event: "escalation.alert" });
    assert.equal(sent.status, 202, sent.text);
    return waitFor("the delivery", () =>
      r.requests.find((q) => q.headers["webhook-id"] === sent.json.delivery_id),
    );
  }

  /** The public key route path of `public_key_url`, to call on the server under test. */
  function pathOf(url: string): string {
    return new URL(url).pathname;
  }

  test("timestamped-hex on create is verified by seed 004's function; PATCH back to standard by the receiver kit", async () => {
    const r = await receiver();
    const wh = await destination(r.url, { signature_scheme: "timestamped-hex" });
    assert.equal(wh.signature_scheme, "timestamped-hex");
    const shown = await s.api.get(`${WH}/${wh.id}`);
    assert.equal(shown.json.signature_scheme, "timestamped-hex");
    assert.equal(shown.json.ed25519_public_key, null);
    assert.equal(shown.json.previous_secret_expires_at, null);
    const listed = (await s.api.get(WH)).json.data.find((w: { id: string }) => w.id === wh.id);
    const { held: _held, ...shownWithoutHeld } = shown.json;
    assert.deepEqual(listed, shownWithoutHeld, "the list shows what one GET shows, but for what it holds");

    const hex = await deliver(wh.id, r);
    const header = String(hex.headers["webhook-signature"]);
    assert.match(header, /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.ok(seed004VerifyWebhook(hex.body, header, wh.secret), "seed 004's function accepts it");
    assert.ok(!seed004VerifyWebhook(hex.body, header, `${wh.secret}x`), "and refuses another secret");
    assert.equal(verifyWebhook({ body: hex.body, headers: hex.headers, secrets: [wh.secret] }).ok, true);

    const patched = await s.api.patch(`${WH}/${wh.id}`, { signature_scheme: "standard" });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.signature_scheme, "standard");
    assert.equal((await s.api.get(`${WH}/${wh.id}`)).json.signature_scheme, "standard");

    const std = await deliver(wh.id, r);
    assert.match(String(std.headers["webhook-signature"]), /^v1,[A-Za-z0-9+/]{43}=$/);
    const kit = verifyWebhook({ body: std.body, headers: std.headers, secrets: [wh.secret] });
    assert.equal(kit.ok, true, JSON.stringify(kit));
    assert.equal(kit.ok && kit.scheme, "standard");
    assert.equal(kit.ok && kit.id, std.headers["webhook-id"]);

    // Other fields of a PATCH leave the scheme alone.
    const other = await s.api.patch(`${WH}/${wh.id}`, { description: "still standard" });
    assert.equal(other.json.signature_scheme, "standard");
  });

  test("signature_scheme defaults to standard and refuses unknown values", async () => {
    const wh = await destination("https://127.0.0.1:9/default");
    assert.equal(wh.signature_scheme, "standard");
    assertApiError(
      await s.api.post(WH, { url: "https://127.0.0.1:9/x", events: ["*"], signature_scheme: "hex" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.signature_scheme",
    );
    for (const bad of ["hex", null, 1, ""]) {
      assertApiError(
        await s.api.patch(`${WH}/${wh.id}`, { signature_scheme: bad }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.signature_scheme",
      );
    }
    assert.equal((await s.api.get(`${WH}/${wh.id}`)).json.signature_scheme, "standard");
  });

  test("rotate with a 60 s grace: two v1 signatures, both secrets verify, the expiry is shown", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    const before = Date.now();
    const rotated = await s.api.post(`${WH}/${wh.id}/rotate-secret`, { grace_period_seconds: 60 });
    assert.equal(rotated.status, 200, rotated.text);
    assert.deepEqual(Object.keys(rotated.json).sort(), ["previous_secret_expires_at", "secret"]);
    assert.match(rotated.json.secret, /^whs_/);
    assert.notEqual(rotated.json.secret, wh.secret);
    const expires = Date.parse(rotated.json.previous_secret_expires_at);
    assert.ok(
      expires >= before + 55_000 && expires <= Date.now() + 65_000,
      `expiry ${rotated.json.previous_secret_expires_at} is about a minute ahead`,
    );
    const shown = await s.api.get(`${WH}/${wh.id}`);
    assert.equal(shown.json.previous_secret_expires_at, rotated.json.previous_secret_expires_at);

    const req = await deliver(wh.id, r);
    const parts = signatureParts(req);
    assert.equal(parts.length, 2, String(req.headers["webhook-signature"]));
    assert.ok(parts.every((p) => p.startsWith("v1,")));
    assert.ok(kitAccepts(req, [rotated.json.secret]), "the new secret verifies");
    assert.ok(kitAccepts(req, [wh.secret]), "the old secret verifies during the grace period");

    // A second rotation without a grace drops the kept secret too: only the newest one signs.
    const again = await s.api.post(`${WH}/${wh.id}/rotate-secret`);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.previous_secret_expires_at, null);
    assert.equal((await s.api.get(`${WH}/${wh.id}`)).json.previous_secret_expires_at, null);
    const next = await deliver(wh.id, r);
    assert.equal(signatureParts(next).length, 1);
    assert.ok(kitAccepts(next, [again.json.secret]));
    assert.ok(!kitAccepts(next, [wh.secret, rotated.json.secret]));
  });

  test("rotate without a grace period: the old secret fails at once", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    assert.ok(kitAccepts(await deliver(wh.id, r), [wh.secret]));

    const rotated = await s.api.post(`${WH}/${wh.id}/rotate-secret`);
    assert.equal(rotated.status, 200, rotated.text);
    assert.deepEqual(rotated.json, { secret: rotated.json.secret, previous_secret_expires_at: null });
    const req = await deliver(wh.id, r);
    assert.equal(signatureParts(req).length, 1);
    const old = verifyWebhook({ body: req.body, headers: req.headers, secrets: [wh.secret] });
    assert.equal(old.ok, false);
    assert.equal(!old.ok && old.reason, "no_matching_signature");
    assert.ok(kitAccepts(req, [rotated.json.secret]));

    // An explicit 0 is the same as none.
    const zero = await s.api.post(`${WH}/${wh.id}/rotate-secret`, { grace_period_seconds: 0 });
    assert.equal(zero.status, 200, zero.text);
    assert.equal(zero.json.previous_secret_expires_at, null);
    const last = await deliver(wh.id, r);
    assert.ok(!kitAccepts(last, [rotated.json.secret]));
    assert.ok(kitAccepts(last, [zero.json.secret]));
  });

  test("bad grace periods answer 400 naming body.grace_period_seconds and leave the secret alone", async () => {
    const wh = await destination("https://127.0.0.1:9/grace");
    const sealed = async () =>
      (
        await s.stack.rt.database.db
          .select({ s: webhooks.signingSecretSealed, p: webhooks.previousSigningSecretSealed })
          .from(webhooks)
          .where(eq(webhooks.id, wh.id))
      )[0];
    const stored = await sealed();
    for (const bad of [-1, 1.5, MAX_GRACE_SECONDS + 1, "10", null, true, 1e20]) {
      assertApiError(
        await s.api.post(`${WH}/${wh.id}/rotate-secret`, { grace_period_seconds: bad }),
        400,
        "ErrCodeInvalidFieldFormat",
        "body.grace_period_seconds",
      );
    }
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/rotate-secret`, { grace: 10 }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.grace",
    );
    assert.deepEqual(await sealed(), stored, "nothing was rotated");

    const longest = await s.api.post(`${WH}/${wh.id}/rotate-secret`, {
      grace_period_seconds: MAX_GRACE_SECONDS,
    });
    assert.equal(longest.status, 200, longest.text);
    const days = (Date.parse(longest.json.previous_secret_expires_at) - Date.now()) / 86_400_000;
    assert.ok(days > 6.99 && days <= 7.01, `${days} days`);
  });

  test("signing key: v1a verified by node:crypto with the key from the public URL; disabling removes both", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    const enabled = await s.api.post(`${WH}/${wh.id}/signing-key`);
    assert.equal(enabled.status, 201, enabled.text);
    assert.deepEqual(Object.keys(enabled.json).sort(), ["algorithm", "public_key", "public_key_url"]);
    assert.equal(enabled.json.algorithm, "ed25519");
    assert.equal(enabled.json.public_key_url, `https://shield.example.test/webhooks/${wh.id}/public-key`);
    assert.equal(Buffer.from(enabled.json.public_key, "base64").length, 32);
    assert.equal((await s.api.get(`${WH}/${wh.id}`)).json.ed25519_public_key, enabled.json.public_key);
    // Enabling again keeps the key receivers already trust.
    const twice = await s.api.post(`${WH}/${wh.id}/signing-key`, {});
    assert.equal(twice.status, 201, twice.text);
    assert.equal(twice.json.public_key, enabled.json.public_key);

    const fetched = await s.api.get(pathOf(enabled.json.public_key_url), { token: null });
    assert.equal(fetched.status, 200, fetched.text);
    assert.deepEqual(fetched.json, {
      webhook_id: wh.id,
      algorithm: "ed25519",
      public_key: enabled.json.public_key,
    });
    assert.match(String(fetched.headers["cache-control"]), /max-age=\d+/);

    const req = await deliver(wh.id, r);
    const parts = signatureParts(req);
    assert.deepEqual(
      parts.map((p) => p.split(",")[0]),
      ["v1", "v1a"],
      "v1a next to v1",
    );
    assert.ok(ed25519Verifies(req, fetched.json.public_key), "node:crypto accepts the v1a signature");
    assert.ok(kitAccepts(req, [wh.secret]), "v1 still verifies on its own");
    const byKey = verifyWebhook({
      body: req.body,
      headers: req.headers,
      publicKeys: [fetched.json.public_key],
    });
    assert.equal(byKey.ok, true, "the receiver kit verifies with the public key alone");
    const tampered = { ...req, body: `${req.body} ` };
    assert.ok(!ed25519Verifies(tampered, fetched.json.public_key));

    const disabled = await s.api.delete(`${WH}/${wh.id}/signing-key`);
    assert.equal(disabled.status, 204, disabled.text);
    assert.equal(disabled.text, "");
    assertApiError(
      await s.api.get(pathOf(enabled.json.public_key_url), { token: null }),
      404,
      "ErrCodeNotFound",
    );
    assert.equal((await s.api.get(`${WH}/${wh.id}`)).json.ed25519_public_key, null);
    const plain = await deliver(wh.id, r);
    assert.ok(!String(plain.headers["webhook-signature"]).includes("v1a,"));
    assert.equal(signatureParts(plain).length, 1);
    assert.ok(kitAccepts(plain, [wh.secret]));
    // Already off: still 204.
    assert.equal((await s.api.delete(`${WH}/${wh.id}/signing-key`)).status, 204);

    // A fresh enable makes a new key pair.
    const renewed = await s.api.post(`${WH}/${wh.id}/signing-key`);
    assert.equal(renewed.status, 201);
    assert.notEqual(renewed.json.public_key, enabled.json.public_key);
  });

  test("the public key URL needs no admin key, ignores one, and 404s unknown ids in the contract's shape", async () => {
    const wh = await destination("https://127.0.0.1:9/pk");
    assertApiError(await s.api.get(`/webhooks/${wh.id}/public-key`, { token: null }), 404, "ErrCodeNotFound");
    assertApiError(await s.api.get("/webhooks/whe_nope/public-key", { token: null }), 404, "ErrCodeNotFound");
    const on = await s.api.post(`${WH}/${wh.id}/signing-key`);
    assert.equal(on.status, 201);
    const withBadKey = await s.api.get(`/webhooks/${wh.id}/public-key`, { token: "esk_not_a_key" });
    assert.equal(withBadKey.status, 200, withBadKey.text);
    assert.equal(withBadKey.json.public_key, on.json.public_key);
    assertApiError(
      await s.api.get(`/webhooks/${wh.id}/public-key?x=1`, { token: null }),
      400,
      "ErrCodeInvalidFieldFormat",
      "query.x",
    );
    // The admin routes stay behind the admin key.
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/signing-key`, undefined, { token: null }),
      401,
      "ErrCodeUnauthorized",
    );
    assertApiError(
      await s.api.delete(`${WH}/${wh.id}/signing-key`, { token: null }),
      401,
      "ErrCodeUnauthorized",
    );
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/signing-key`, { algorithm: "rsa" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.algorithm",
    );
  });

  test("another organization's ids answer 404 on every new route and change nothing", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    const keyOn = await s.api.post(`${WH}/${wh.id}/signing-key`);
    assert.equal(keyOn.status, 201);
    const before = (await s.api.get(`${WH}/${wh.id}`)).json;

    const other = await secondOrganization(s.stack, `sig-b-${process.pid}`);
    const b = s.api.as(other.adminApiKey);
    const calls: [string, string, unknown?][] = [
      ["PATCH", `${WH}/${wh.id}`, { signature_scheme: "timestamped-hex" }],
      ["POST", `${WH}/${wh.id}/rotate-secret`, { grace_period_seconds: 60 }],
      ["POST", `${WH}/${wh.id}/rotate-secret`],
      ["POST", `${WH}/${wh.id}/signing-key`],
      ["DELETE", `${WH}/${wh.id}/signing-key`],
      ["GET", `${WH}/${wh.id}`],
    ];
    for (const [method, path, body] of calls) {
      const res = await b.request(method, path, body === undefined ? {} : { body });
      assertApiError(res, 404, "ErrCodeNotFound");
      assert.ok(!res.text.includes(keyOn.json.public_key), `${method} ${path} leaks the key`);
    }
    assert.deepEqual((await s.api.get(`${WH}/${wh.id}`)).json, before, "A's destination is untouched");
    const req = await deliver(wh.id, r);
    assert.ok(kitAccepts(req, [wh.secret]), "A's secret was not rotated");
    assert.equal(signatureParts(req).length, 2, "one v1 and A's v1a");
    assert.ok(ed25519Verifies(req, keyOn.json.public_key));

    // B's own destinations work; ids of A stay unknown to B's admin calls, whatever B does with its own.
    const own = await destination("https://127.0.0.1:9/b", {}, b);
    assert.equal((await b.post(`${WH}/${own.id}/signing-key`)).status, 201);
    assert.equal((await b.delete(`${WH}/${own.id}/signing-key`)).status, 204);
  });

  test("/docs/json documents the new routes and fields", async () => {
    const doc = (await s.api.get("/docs/json", { token: null })).json;
    const key = doc.paths["/api/integrations/webhooks/{id}/signing-key"];
    assert.ok(key.post.summary && key.delete.summary);
    assert.deepEqual(key.post.security, [{ adminApiKey: [] }]);
    assert.ok(key.post.responses["201"]);
    const pub = doc.paths["/webhooks/{id}/public-key"].get;
    assert.ok(pub.summary);
    assert.equal(pub.security, undefined, "no admin key");
    assert.ok(pub.responses["200"] && pub.responses["4XX"]);
    const rotate = doc.paths["/api/integrations/webhooks/{id}/rotate-secret"].post;
    assert.equal(rotate.requestBody.required, false);
    const graceSchema = rotate.requestBody.content["application/json"].schema.properties.grace_period_seconds;
    assert.deepEqual([graceSchema.type, graceSchema.minimum, graceSchema.maximum], ["integer", 0, 604800]);
    const create =
      doc.paths["/api/integrations/webhooks"].post.requestBody.content["application/json"].schema;
    assert.deepEqual(create.properties.signature_scheme.enum, ["standard", "timestamped-hex"]);
  });
});

describe("the public key URL is rate-limited per client address", () => {
  let s: ApiStack;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false, env: { VALIDATE_RATE_LIMIT_PER_MINUTE: "3" } });
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("past the limit: 429 ErrCodeRateLimited, for known and unknown ids alike", async () => {
    const wh = await s.api.post(WH, { url: "https://127.0.0.1:9/rl", events: ["*"] });
    assert.equal(wh.status, 201, wh.text);
    assert.equal((await s.api.post(`${WH}/${wh.json.id}/signing-key`)).status, 201);
    for (let i = 0; i < 2; i++) {
      assert.equal((await s.api.get(`/webhooks/${wh.json.id}/public-key`, { token: null })).status, 200);
    }
    assertApiError(
      await s.api.get("/webhooks/whe_unknown/public-key", { token: null }),
      404,
      "ErrCodeNotFound",
    );
    assertApiError(
      await s.api.get(`/webhooks/${wh.json.id}/public-key`, { token: null }),
      429,
      "ErrCodeRateLimited",
    );
    assertApiError(
      await s.api.get("/webhooks/whe_unknown/public-key", { token: null }),
      429,
      "ErrCodeRateLimited",
    );
    // The admin API has its own limit, untouched by this one.
    assert.equal((await s.api.get(`${WH}/${wh.json.id}`)).status, 200);
  });
});
