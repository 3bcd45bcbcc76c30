import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { count, eq } from "drizzle-orm";
import { records } from "../src/db/schema.ts";
import { recordId } from "../src/ingestion/store.ts";
import { type ApiStack, assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";

const FIXTURES = "test/fixtures/seed-000";
const nowS = () => Math.floor(Date.now() / 1000) - 10;

function review(id: string, text = "Works as described.", extra: Record<string, unknown> = {}) {
  return { id, fileID: "reviews", type: "REVIEW", createdAt: nowS(), text, metadata: {}, ...extra };
}

describe("feedback ingestion over HTTP", () => {
  let s: ApiStack;
  let key: string;
  let integrationId: string;
  let audio: Receiver;
  const baseline = handleBaseline();

  const ingest = (body: unknown, headers: Record<string, string> = {}, apiKey: string | null = key) =>
    s.api.request("POST", "/webhook/custom/all", {
      raw: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
      token: null,
      headers: { "content-type": "application/json", ...(apiKey ? { "api-key": apiKey } : {}), ...headers },
    });
  const stored = async () =>
    (
      await s.stack.rt.database.db
        .select({ n: count() })
        .from(records)
        .where(eq(records.integrationId, integrationId))
    )[0]?.n ?? 0;

  before(async () => {
    s = await startApiStack({ worker: false, env: { AUDIO_FETCH_ALLOWLIST: "127.0.0.1" } });
    const res = await s.api.post("/api/integrations/feedback", { display_name: "ZendeskSupport" });
    assert.equal(res.status, 201, res.text);
    key = res.json.api_key;
    integrationId = res.json.id;
    audio = await startReceiver({
      behaviour: (req, res) => {
        if (req.path.endsWith("page.mp3")) res.writeHead(200, { "content-type": "text/html" }).end("<html>");
        else if (req.path.endsWith("missing.mp3")) res.writeHead(404).end();
        else res.writeHead(200, { "content-type": "audio/mpeg" }).end(Buffer.alloc(64));
      },
    });
  });
  after(async () => {
    await audio.close();
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("every complete example payload of the guide is accepted as written", async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".json"));
    assert.ok(files.length >= 8);
    for (const file of files) {
      const payload = JSON.parse(readFileSync(`${FIXTURES}/${file}`, "utf8"));
      if (!Array.isArray(payload.records)) continue;
      for (const r of payload.records) {
        if (r.type === "AUDIO_RECORDING") {
          // The guide's storage.example.com cannot be reached here: a local HTTPS server serves the audio.
          r.audioRecording.audioURL = `${audio.url.replace("/hook", "")}/calls/${r.id}.mp3`;
        }
        if (r.type === "REVIEW" && !r.text) r.text = "The guide's core-fields example carries no text.";
      }
      const res = await ingest(payload);
      assert.equal(res.status, 200, `${file}: ${res.text}`);
      assert.equal(res.json.received, payload.records.length, file);
    }
  });

  test("a valid batch is stored, and the answer says what happened to each", async () => {
    const res = await ingest({ records: [review("r-1"), review("r-2")] });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      { received: res.json.received, created: res.json.created, skipped: res.json.skipped },
      { received: 2, created: 2, skipped: 0 },
    );
    assert.deepEqual(res.json.record_ids, [recordId(integrationId, "r-1"), recordId(integrationId, "r-2")]);
  });

  const rules: [string, Record<string, unknown>, number, string, string][] = [
    ["missing id", { id: undefined }, 400, "ErrCodeMissingRequiredField", "records[0].id"],
    ["missing fileID", { fileID: undefined }, 400, "ErrCodeMissingRequiredField", "records[0].fileID"],
    ["unknown type", { type: "TWEET" }, 400, "ErrCodeInvalidFieldFormat", "records[0].type"],
    ["missing metadata", { metadata: undefined }, 400, "ErrCodeMissingRequiredField", "records[0].metadata"],
    [
      "createdAt as a date string",
      { createdAt: "2024-05-23" },
      400,
      "ErrCodeInvalidFieldFormat",
      "records[0].createdAt",
    ],
    [
      "createdAt before 2000",
      { createdAt: 946684799 },
      400,
      "ErrCodeInvalidFieldFormat",
      "records[0].createdAt",
    ],
    [
      "createdAt in the future",
      { createdAt: nowS() + 86400 },
      400,
      "ErrCodeInvalidFieldFormat",
      "records[0].createdAt",
    ],
    ["empty review text", { text: "  " }, 400, "ErrCodeMissingRequiredField", "records[0].text"],
    [
      "mixed metadata types",
      { metadata: { rating: { array: { n: [5], s: ["five"] } } } },
      400,
      "ErrCodeInvalidFieldFormat",
      "records[0].metadata",
    ],
    [
      "sourceURL not a URL",
      { sourceURL: "not a url" },
      400,
      "ErrCodeInvalidFieldFormat",
      "records[0].sourceURL",
    ],
  ];
  for (const [name, patch, status, code, field] of rules) {
    test(`${name}: ${status} ${code} naming ${field}, nothing stored`, async () => {
      const before = await stored();
      const record: Record<string, unknown> = { ...review("rule-ok-1"), ...patch };
      for (const k of Object.keys(patch)) if (patch[k] === undefined) delete record[k];
      const res = await ingest({ records: [review("rule-ok-0"), record] });
      assertApiError(res, status, code, field.replace("[0]", "[1]"));
      assert.equal(await stored(), before);
    });
  }

  test("a conversation message with another actor rejects the record, naming the message", async () => {
    const res = await ingest({
      records: [
        {
          id: "c-1",
          fileID: "chat",
          type: "CONVERSATION",
          createdAt: nowS(),
          conversation: { msgs: [{ actor: "customer", text: "hi" }] },
          metadata: {},
        },
      ],
    });
    assertApiError(res, 400, "ErrCodeInvalidFieldFormat", "records[0].conversation.msgs[0].actor");
  });

  test("a survey answer without a question names the response index", async () => {
    const res = await ingest({
      records: [
        {
          id: "s-1",
          fileID: "nps",
          type: "SURVEY",
          createdAt: nowS(),
          surveyResponse: {
            responses: [
              { question: "Q?", answer: "A" },
              { question: "", answer: "B" },
            ],
          },
          metadata: {},
        },
      ],
    });
    assertApiError(
      res,
      400,
      "ErrCodeMissingRequiredField",
      "records[0].surveyResponse.responses[1].question",
    );
  });

  test("more than 100 records: 400 ErrCodeTooManyRecords", async () => {
    const res = await ingest({ records: Array.from({ length: 101 }, (_, i) => review(`many-${i}`, "ok")) });
    assertApiError(res, 400, "ErrCodeTooManyRecords");
  });

  test("a body over 200 KB: 413 ErrCodePayloadTooLarge, and the same for gzip that inflates past it", async () => {
    const big = { records: [review("big", "x".repeat(210 * 1024))] };
    assertApiError(await ingest(big), 413, "ErrCodePayloadTooLarge");
    const bomb = gzipSync(Buffer.from(JSON.stringify({ records: [review("bomb", " ".repeat(5_000_000))] })));
    assert.ok(bomb.length < 200 * 1024);
    assertApiError(await ingest(bomb, { "content-encoding": "gzip" }), 413, "ErrCodePayloadTooLarge");
  });

  test("a gzip body is accepted", async () => {
    const body = gzipSync(Buffer.from(JSON.stringify({ records: [review("gz-1")] })));
    const res = await ingest(body, { "content-encoding": "gzip" });
    assert.equal(res.status, 200, res.text);
  });

  test("a missing or wrong api-key: 401 ErrCodeUnauthorized", async () => {
    assertApiError(await ingest({ records: [review("k")] }, {}, null), 401, "ErrCodeUnauthorized", "api-key");
    assertApiError(await ingest({ records: [review("k")] }, {}, "esf_wrong"), 401, "ErrCodeUnauthorized");
  });

  test("audio URLs are fetched: text/html, a 404 and a private address are refused, audio passes", async () => {
    const base = audio.url.replace("/hook", "");
    const rec = (id: string, url: string) => ({
      id,
      fileID: "calls",
      type: "AUDIO_RECORDING",
      createdAt: nowS(),
      audioRecording: { audioURL: url },
      metadata: {},
    });
    const before = await stored();
    assertApiError(
      await ingest({ records: [rec("a-1", `${base}/page.mp3`)] }),
      400,
      "ErrCodeInvalidFieldFormat",
      "audioURL: not audio",
    );
    assertApiError(
      await ingest({ records: [rec("a-2", `${base}/missing.mp3`)] }),
      400,
      "ErrCodeInvalidFieldFormat",
      "audioURL: not reachable",
    );
    const res = await ingest({ records: [rec("a-3", "https://10.255.255.1/call.mp3")] });
    assertApiError(res, 400, "ErrCodeInvalidFieldFormat", "audioURL: not allowed");
    assert.equal(await stored(), before);
    const fetched = audio.requests.length;
    const ok = await ingest({ records: [rec("a-4", `${base}/good.mp3`)] });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(audio.requests.length, fetched + 1);
  });

  test("mutability off: a resent id is skipped; the same id from another integration is another record", async () => {
    const first = await ingest({ records: [review("dup-1", "first")] });
    assert.equal(first.json.created, 1);
    const again = await ingest({ records: [review("dup-1", "second"), review("DUP-1", "other case")] });
    assert.deepEqual([again.json.created, again.json.skipped], [1, 1]);
    const other = await s.api.post("/api/integrations/feedback", { display_name: "Other" });
    const res = await ingest({ records: [review("dup-1", "elsewhere")] }, {}, other.json.api_key);
    assert.equal(res.json.created, 1);
    assert.notEqual(recordId(other.json.id, "dup-1"), recordId(integrationId, "dup-1"));
  });

  test("mutability on: a resent id replaces the record whole", async () => {
    const m = await s.api.post("/api/integrations/feedback", {
      display_name: "Mutable",
      data_mutability: true,
    });
    const k = m.json.api_key;
    await ingest(
      { records: [review("mut-1", "original", { metadata: { a: { s: ["x"] }, b: { n: [1] } } })] },
      {},
      k,
    );
    const res = await ingest(
      { records: [review("mut-1", "edited", { metadata: { a: { s: ["y"] } } })] },
      {},
      k,
    );
    assert.deepEqual([res.json.created, res.json.replaced], [0, 1]);
    const view = await s.api.get(`/api/records/${recordId(m.json.id, "mut-1")}`);
    assert.equal(view.status, 200, view.text);
    assert.deepEqual(view.json.content, { kind: "text", text: "edited" });
    assert.deepEqual(view.json.metadata, { a: { type: "s", values: ["y"] } });
    assert.equal(view.json.version, 2);
  });

  test("the validator gives per-record verdicts, a preview and a cURL command, and stores nothing", async () => {
    const before = await stored();
    const res = await s.api.request("POST", "/webhook/custom/validate", {
      token: null,
      body: {
        records: [
          review("v-1", "fine", { metadata: { metadata: { tier: { array: { s: "Gold" } } } } }),
          review("v-2", ""),
        ],
      },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.valid, false);
    assert.equal(res.json.records[0].valid, true);
    assert.deepEqual(res.json.records[0].preview.metadata, { tier: { type: "s", values: ["Gold"] } });
    assert.equal(res.json.records[1].valid, false);
    assert.equal(res.json.records[1].issues[0].code, "ErrCodeMissingRequiredField");
    const good = await s.api.request("POST", "/webhook/custom/validate", {
      token: null,
      body: { records: [review("v-3")] },
    });
    assert.equal(good.json.valid, true);
    assert.match(good.json.curl, /^curl -X POST '.*\/webhook\/custom\/all' -H 'api-key: <your-api-key>'/);
    assert.equal(await stored(), before);
  });
});

describe("ingestion limits", () => {
  const baseline = handleBaseline();
  test("over the per-key rate limit: 429 ErrCodeRateLimited with Retry-After", async () => {
    const s = await startApiStack({ worker: false, env: { INGEST_RATE_LIMIT_PER_MINUTE: "3" } });
    try {
      const created = await s.api.post("/api/integrations/feedback", { display_name: "Limited" });
      const send = () =>
        s.api.request("POST", "/webhook/custom/all", {
          token: null,
          headers: { "api-key": created.json.api_key },
          body: { records: [review(`rl-${Math.random()}`)] },
        });
      for (let i = 0; i < 3; i++) assert.equal((await send()).status, 200);
      const limited = await send();
      assertApiError(limited, 429, "ErrCodeRateLimited");
      assert.ok(Number(limited.headers["retry-after"]) > 0);
    } finally {
      await s.close();
    }
    await assertNoOpenHandles(baseline);
  });
});
