import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { count } from "drizzle-orm";
import { records } from "../src/db/schema.ts";
import { type ApiStack, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  name: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

const nowS = Math.floor(Date.now() / 1000) - 10;
const good = () => ({ id: "ok", fileID: "f", type: "REVIEW", createdAt: nowS, text: "fine", metadata: {} });
const WRONG_VALUES: unknown[] = [
  null,
  0,
  -1,
  1.5,
  "",
  " ",
  "x".repeat(300_000),
  true,
  [],
  {},
  [[]],
  { a: { b: 1 } },
  "2024-05-23",
  Number.POSITIVE_INFINITY,
];
/** The required fields of a review, each with the generated values that are wrong for it. */
const FIELDS: [string, (v: unknown) => boolean][] = [
  ["id", (v) => typeof v !== "string" || v.trim() === "" || v.length > 512],
  ["fileID", (v) => typeof v !== "string" || v.trim() === "" || v.length > 512],
  ["type", () => true],
  ["createdAt", () => true],
  [
    "metadata",
    (v) => !(typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0),
  ],
  ["text", (v) => typeof v !== "string" || v.trim() === "" || v.length > 200_000],
  ["sourceURL", (v) => v !== null && !(typeof v === "number" && !Number.isFinite(v))],
];

function nested(depth: number): unknown {
  let v: unknown = "leaf";
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
  return v;
}

function cases(): Case[] {
  const r = rng(20261122);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const out: Case[] = [];
  const json = (name: string, value: unknown, headers?: Record<string, string>) =>
    out.push({ name, body: JSON.stringify(value) ?? "", headers });

  // Wrong types and missing fields, per field and per record type.
  for (let i = 0; i < 260; i++) {
    const rec: Record<string, unknown> = { ...good(), id: `bad-${i}` };
    const [field, wrong] = pick(FIELDS);
    if (r() < 0.3 && field !== "sourceURL") delete rec[field];
    else rec[field] = pick(WRONG_VALUES.filter(wrong));
    json(`field ${field} #${i}`, { records: [good(), rec] });
  }
  // Malformed bodies at the top level.
  for (const top of [
    null,
    [],
    "records",
    42,
    { records: null },
    { records: {} },
    { records: "x" },
    { record: [good()] },
    { records: [] },
  ]) {
    json(`top ${JSON.stringify(top)}`, top);
  }
  // Deep nesting in every place a value can go.
  for (const depth of [40, 200, 2000]) {
    json(`deep metadata ${depth}`, { records: [{ ...good(), metadata: { f: nested(depth) } }] });
    json(`deep unknown field ${depth}`, { records: [{ ...good(), extra: nested(depth) }] });
    json(`deep records ${depth}`, { records: nested(depth) });
  }
  // Conversations, surveys and audio with broken insides.
  for (let i = 0; i < 160; i++) {
    const kind = pick(["conversation", "survey", "audio", "metadata"]);
    // Values that are wrong wherever a non-empty string is required.
    const bad = pick(
      WRONG_VALUES.filter((v) => typeof v !== "string" || v.trim() === "" || v.length > 200_000),
    );
    if (kind === "conversation") {
      json(`conversation #${i}`, {
        records: [
          {
            ...good(),
            type: "CONVERSATION",
            conversation: { msgs: [{ actor: pick(["user", "admin", bad]), text: bad }] },
          },
        ],
      });
    } else if (kind === "survey") {
      json(`survey #${i}`, {
        records: [
          {
            ...good(),
            type: "SURVEY",
            surveyResponse: { responses: [{ question: bad, answer: pick([bad, "a"]) }] },
          },
        ],
      });
    } else if (kind === "audio") {
      json(`audio #${i}`, {
        records: [
          {
            ...good(),
            type: "AUDIO_RECORDING",
            audioRecording: { audioURL: pick([bad, "ftp://x/a.mp3", "https://x/a.txt"]) },
          },
        ],
      });
    } else {
      const type = pick(["s", "n", "b", "x"]);
      const wrongFor: Record<string, (v: unknown) => boolean> = {
        s: (v) => typeof v !== "string",
        n: (v) => typeof v !== "number" || !Number.isFinite(v),
        b: (v) => typeof v !== "boolean",
        x: () => true,
      };
      const value = pick(WRONG_VALUES.filter(wrongFor[type] ?? (() => true)));
      json(`metadata #${i}`, { records: [{ ...good(), metadata: { f: { array: { [type]: [value] } } } }] });
    }
  }
  // Truncated JSON.
  const full = JSON.stringify({ records: [good(), good()] });
  for (let i = 0; i < 60; i++)
    out.push({ name: `truncated at ${i}`, body: full.slice(0, Math.floor(r() * (full.length - 1))) });
  // Bytes that are not UTF-8.
  for (let i = 0; i < 30; i++) {
    const bytes = Buffer.from(full);
    bytes[10 + Math.floor(r() * (bytes.length - 20))] = pick([0xff, 0xfe, 0xc0, 0x80]);
    out.push({ name: `bad utf-8 #${i}`, body: bytes });
  }
  // Wrong content types and encodings.
  for (const ct of [
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "",
  ]) {
    out.push({ name: `content-type ${ct}`, body: full, headers: { "content-type": ct } });
  }
  out.push({ name: "deflate", body: full, headers: { "content-encoding": "deflate" } });
  out.push({ name: "not gzip", body: full, headers: { "content-encoding": "gzip" } });
  // Gzip bombs and oversize.
  for (const size of [300_000, 5_000_000, 50_000_000]) {
    out.push({
      name: `gzip bomb ${size}`,
      body: gzipSync(Buffer.alloc(size, 0x20)),
      headers: { "content-encoding": "gzip" },
    });
  }
  out.push({
    name: "huge string",
    body: JSON.stringify({ records: [{ ...good(), text: "x".repeat(250_000) }] }),
  });
  out.push({ name: "101 records", body: JSON.stringify({ records: Array.from({ length: 101 }, good) }) });
  return out;
}

describe("malformed ingestion input", () => {
  let s: ApiStack;
  let key: string;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false, env: { INGEST_RATE_LIMIT_PER_MINUTE: "100000" } });
    key = (await s.api.post("/api/integrations/feedback", { display_name: "Fuzz" })).json.api_key;
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  test("at least 500 bad bodies: each a 4xx with a code, never a 5xx, and nothing stored", async () => {
    const all = cases();
    assert.ok(all.length >= 500, `only ${all.length} cases`);
    const codes = new Map<string, number>();
    for (const c of all) {
      const res = await s.api.request("POST", "/webhook/custom/all", {
        raw: c.body,
        token: null,
        headers: { "api-key": key, "content-type": "application/json", ...c.headers },
      });
      assert.ok(res.status >= 400 && res.status < 500, `${c.name}: ${res.status} ${res.text.slice(0, 300)}`);
      assert.equal(typeof res.json?.code, "string", `${c.name}: no code in ${res.text.slice(0, 200)}`);
      assert.equal(typeof res.json?.msg, "string");
      codes.set(res.json.code, (codes.get(res.json.code) ?? 0) + 1);
    }
    const [{ n } = { n: -1 }] = await s.stack.rt.database.db.select({ n: count() }).from(records);
    assert.equal(n, 0);
    for (const code of [
      "ErrCodeBadRequest",
      "ErrCodeMissingRequiredField",
      "ErrCodeInvalidFieldFormat",
      "ErrCodePayloadTooLarge",
      "ErrCodeTooManyRecords",
    ]) {
      assert.ok(codes.has(code), `no case answered ${code}: ${JSON.stringify([...codes])}`);
    }
  });
});
