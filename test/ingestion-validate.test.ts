import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  type IngestionErrorCode,
  type IngestionIssue,
  validateBatch,
  validateRecord,
} from "../src/ingestion/validate.ts";

/** After every createdAt in seed 000's examples (the latest, 1774600094, is 2026-03-27). */
const NOW = new Date("2026-06-01T00:00:00Z");
const NOW_SECONDS = Math.floor(NOW.getTime() / 1000);
const CODES: readonly IngestionErrorCode[] = [
  "ErrCodeMissingRequiredField",
  "ErrCodeInvalidFieldFormat",
  "ErrCodeBadRequest",
  "ErrCodeTooManyRecords",
];

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`./fixtures/seed-000/${name}.json`, import.meta.url), "utf8"));
}

function review(overrides: Json = {}): Json {
  return {
    id: "review-1",
    fileID: "appstore",
    type: "REVIEW",
    createdAt: 1716460800,
    text: "Great app",
    metadata: {},
    ...overrides,
  };
}

function conversation(msgs: unknown, overrides: Json = {}): Json {
  return review({ type: "CONVERSATION", text: undefined, conversation: { msgs }, ...overrides });
}

function survey(responses: unknown): Json {
  return review({ type: "SURVEY", text: undefined, surveyResponse: { responses } });
}

function audio(audioRecording: unknown): Json {
  return review({ type: "AUDIO_RECORDING", text: undefined, audioRecording });
}

/** Validates `bad` as the record at `index` of a batch whose other records are valid. */
function issuesFor(bad: unknown, index = 0): IngestionIssue[] {
  const records: unknown[] = [];
  for (let i = 0; i < index; i++) records.push(review({ id: `ok-${i}` }));
  records.push(bad);
  const result = validateBatch({ records }, NOW);
  assert.equal(result.ok, false, "expected the batch to be rejected");
  return result.ok ? [] : result.issues;
}

/** Asserts the one issue of a bad record: its code, its path and that the message names path and rule. */
function expectIssue(
  bad: unknown,
  code: IngestionErrorCode,
  field: string,
  rule: string | RegExp,
  index = 0,
): void {
  const issues = issuesFor(bad, index);
  assert.equal(issues.length, 1, `expected one issue, got ${JSON.stringify(issues)}`);
  const [issue] = issues as [IngestionIssue];
  assert.equal(issue.code, code, issue.msg);
  assert.equal(issue.recordIndex, index);
  assert.equal(issue.field, `records[${index}]${field}`);
  assert.ok(issue.msg.startsWith(`records[${index}]${field}: `), issue.msg);
  if (typeof rule === "string") assert.ok(issue.msg.includes(rule), `"${issue.msg}" lacks "${rule}"`);
  else assert.match(issue.msg, rule);
}

function accept(raw: unknown, now = NOW) {
  const result = validateRecord(raw, 0, now);
  assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
  return result.record;
}

function expectBatchIssue(body: unknown, code: IngestionErrorCode, rule: string): void {
  const result = validateBatch(body, NOW);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.issues.length, 1);
  const [issue] = result.issues as [IngestionIssue];
  assert.equal(issue.code, code);
  assert.equal(issue.field, "records");
  assert.equal(issue.recordIndex, undefined);
  assert.ok(issue.msg.startsWith("records: ") && issue.msg.includes(rule), issue.msg);
}

describe("seed 000 examples", () => {
  function acceptAll(body: Json): ReturnType<typeof accept>[] {
    const result = validateBatch(body, NOW);
    assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
    return result.records;
  }

  test("core-fields example: every core field is accepted; as a REVIEW it still needs its text", () => {
    const body = fixture("core-fields");
    expectIssue((body.records as Json[])[0], "ErrCodeMissingRequiredField", ".text", "text is required");
    const records = body.records as Json[];
    const [record] = acceptAll({ records: [{ ...records[0], text: "added" }] });
    assert.equal(record?.externalId, "unique-identifier");
    assert.equal(record?.fileId, "source-identifier");
    assert.equal(record?.occurredAt.getTime(), 1768913221 * 1000);
    assert.deepEqual(record?.metadata, { custom_field: { type: "s", values: ["value1", "value2"] } });
  });

  test("REVIEW example (type-specific part wrapped with id and fileID)", () => {
    const [record] = acceptAll({
      records: [{ id: "r-1", fileID: "reviews", ...fixture("review-type-part") }],
    });
    assert.deepEqual(record?.content, {
      kind: "text",
      text: "This product works exactly as described. Very happy with my purchase!",
    });
    assert.deepEqual(record?.metadata, {
      rating: { type: "n", values: [5] },
      platform: { type: "s", values: ["iOS App Store"] },
    });
  });

  test("SURVEY example: answers normalized to lists", () => {
    const [record] = acceptAll(fixture("survey"));
    assert.deepEqual(record?.content, {
      kind: "survey",
      responses: [
        {
          question: "How likely are you to recommend our product to a colleague?",
          answer: ["9"],
          selectedOptions: [],
        },
        {
          question: "What is the primary reason for your score?",
          answer: ["The product is intuitive and saves me time on daily tasks."],
          selectedOptions: [],
        },
        {
          question: "Which features do you use most often?",
          answer: [],
          selectedOptions: ["Dashboard", "Reports", "API"],
        },
      ],
    });
    assert.deepEqual(record?.metadata.nps_score, { type: "n", values: [9] });
  });

  test("CONVERSATION example", () => {
    const [record] = acceptAll(fixture("conversation"));
    assert.equal(record?.type, "CONVERSATION");
    assert.equal(record?.externalId, "01JY05BQ6EV1RPSXJ61K0BV0YA");
    assert.deepEqual(record?.content, {
      kind: "messages",
      messages: [
        { actor: "bot", text: "Hello boom504!" },
        { actor: "bot", text: "Hello boom504!" },
      ],
    });
    assert.equal(Object.keys(record?.metadata ?? {}).length, 15);
    assert.deepEqual(record?.metadata.language, { type: "s", values: ["English"] });
  });

  test("FORUM_CONVERSATION_THREAD example: metadata without wrappers, first message is the post", () => {
    const [record] = acceptAll(fixture("forum-conversation-thread"));
    assert.equal(record?.occurredAt.getTime(), 1774600094 * 1000);
    assert.equal(record?.content.kind, "messages");
    if (record?.content.kind !== "messages") return;
    assert.equal(record.content.messages.length, 3);
    assert.match(record.content.messages[0]?.text ?? "", /^Has anyone tried the new API v2/);
    assert.deepEqual(record.metadata, {
      source_platform: { type: "s", values: ["community_forum"] },
      thread_topic: { type: "s", values: ["API v2 timeouts"] },
    });
  });

  test("AUDIO_RECORDING example with automatic transcription", () => {
    const [record] = acceptAll(fixture("audio-recording-automatic-transcription"));
    const url = "https://storage.example.com/calls/customer-feedback-call.mp3";
    assert.equal(record?.audioUrl, url);
    assert.deepEqual(record?.content, { kind: "audio", audioUrl: url, transcript: null });
    assert.deepEqual(record?.metadata.call_duration_seconds, { type: "n", values: [352] });
  });

  test("AUDIO_RECORDING example with provided transcript", () => {
    const [record] = acceptAll(fixture("audio-recording-provided-transcript"));
    assert.deepEqual(record?.content, {
      kind: "audio",
      audioUrl: "https://storage.example.com/calls/support-call.mp3",
      transcript: [
        {
          actor: "agent",
          actorId: "support-rep-42",
          text: "Thank you for calling customer support. How can I help you today?",
          startMs: 1000,
          endMs: 5000,
        },
        {
          actor: "user",
          actorId: "caller",
          text: "Hi, I'm having an issue with logging into my account.",
          startMs: 5500,
          endMs: 9000,
        },
      ],
    });
  });

  test("mutability examples: updating a review and adding metadata", () => {
    const [updated] = acceptAll(fixture("mutability-update-review"));
    assert.equal(updated?.externalId, "review-123");
    assert.deepEqual(updated?.metadata.updated_at, { type: "n", values: [1716500000] });
    const [added] = acceptAll(fixture("mutability-add-metadata"));
    assert.deepEqual(Object.keys(added?.metadata ?? {}), ["rating", "user_tier", "lifetime_value"]);
  });

  test("the Python example's generated reviews, created now", () => {
    const body = fixture("python-generated-review");
    const created = Math.floor(Date.now() / 1000);
    const records = (body.records as Json[]).map((r) => ({ ...r, createdAt: created }));
    const result = validateBatch({ records });
    assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
    assert.deepEqual(
      result.records.map((r) => r.externalId),
      ["review-1", "review-2", "review-3"],
    );
  });
});

describe("batch", () => {
  test("body must be an object with a records array", () => {
    expectBatchIssue(null, "ErrCodeBadRequest", "body must be a JSON object");
    expectBatchIssue([review()], "ErrCodeBadRequest", "body must be a JSON object");
    expectBatchIssue("records", "ErrCodeBadRequest", "body must be a JSON object");
    expectBatchIssue({}, "ErrCodeBadRequest", "records must be an array");
    expectBatchIssue({ records: { 0: review() } }, "ErrCodeBadRequest", "records must be an array");
  });

  test("an empty records array is a bad request", () => {
    expectBatchIssue({ records: [] }, "ErrCodeBadRequest", "at least one record");
  });

  test("more than 100 records is too many; exactly 100 is accepted", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => review({ id: `r-${i}` }));
    expectBatchIssue({ records: many(101) }, "ErrCodeTooManyRecords", "101 (max 100)");
    const result = validateBatch({ records: many(100) }, NOW);
    assert.ok(result.ok);
    assert.equal(result.records.length, 100);
  });

  test("all or nothing: one bad record rejects the batch and names its index", () => {
    expectIssue(review({ id: 7 }), "ErrCodeInvalidFieldFormat", ".id", "id must be a string (got number)", 2);
  });

  test("issues of every record are collected, capped at 50", () => {
    const two = validateBatch(
      { records: [review({ id: "" }), review(), review({ fileID: undefined })] },
      NOW,
    );
    assert.equal(two.ok, false);
    if (!two.ok)
      assert.deepEqual(
        two.issues.map((i) => i.field),
        ["records[0].id", "records[2].fileID"],
      );
    const bad = Array.from({ length: 100 }, () => ({}));
    const capped = validateBatch({ records: bad }, NOW);
    assert.equal(capped.ok, false);
    if (!capped.ok) assert.equal(capped.issues.length, 50);
  });

  test("validateRecord reports with the given index", () => {
    const result = validateRecord(review({ type: "NOPE" }), 42, NOW);
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.issues[0]?.field, "records[42].type");
      assert.equal(result.issues[0]?.recordIndex, 42);
    }
  });
});

describe("core fields", () => {
  test("a record must be an object", () => {
    expectIssue("hello", "ErrCodeInvalidFieldFormat", "", "record must be an object (got string)", 1);
    expectIssue(null, "ErrCodeInvalidFieldFormat", "", "record must be an object (got null)");
  });

  test("id: required, non-empty string, at most 512 characters, kept exactly", () => {
    expectIssue(review({ id: undefined }), "ErrCodeMissingRequiredField", ".id", "id is required");
    expectIssue(review({ id: null }), "ErrCodeMissingRequiredField", ".id", "id is required");
    expectIssue(review({ id: "" }), "ErrCodeMissingRequiredField", ".id", "id must not be empty");
    expectIssue(review({ id: 123 }), "ErrCodeInvalidFieldFormat", ".id", "id must be a string (got number)");
    expectIssue(
      review({ id: "x".repeat(513) }),
      "ErrCodeInvalidFieldFormat",
      ".id",
      "at most 512 characters",
    );
    assert.equal(accept(review({ id: "x".repeat(512) })).externalId.length, 512);
    assert.equal(accept(review({ id: "Review-ABC " })).externalId, "Review-ABC ");
  });

  test("fileID: required non-empty string", () => {
    expectIssue(
      review({ fileID: undefined }),
      "ErrCodeMissingRequiredField",
      ".fileID",
      "fileID is required",
    );
    expectIssue(review({ fileID: "  " }), "ErrCodeMissingRequiredField", ".fileID", "must not be empty");
    expectIssue(review({ fileID: ["a"] }), "ErrCodeInvalidFieldFormat", ".fileID", "(got array)");
  });

  test("type: required, one of the five", () => {
    expectIssue(review({ type: undefined }), "ErrCodeMissingRequiredField", ".type", "type is required");
    expectIssue(
      review({ type: "review" }),
      "ErrCodeInvalidFieldFormat",
      ".type",
      "must be one of REVIEW, SURVEY",
    );
    expectIssue(review({ type: "CHAT" }), "ErrCodeInvalidFieldFormat", ".type", '(got "CHAT")');
    expectIssue(review({ type: 1 }), "ErrCodeInvalidFieldFormat", ".type", "type must be a string");
  });

  test("metadata: required; {} is valid; not an object is a format error", () => {
    expectIssue(
      review({ metadata: undefined }),
      "ErrCodeMissingRequiredField",
      ".metadata",
      "metadata is required",
    );
    expectIssue(
      review({ metadata: null }),
      "ErrCodeMissingRequiredField",
      ".metadata",
      "metadata is required",
    );
    expectIssue(
      review({ metadata: [] }),
      "ErrCodeInvalidFieldFormat",
      ".metadata",
      "must be an object (got array)",
    );
    expectIssue(review({ metadata: "x" }), "ErrCodeInvalidFieldFormat", ".metadata", "(got string)");
    assert.deepEqual(accept(review({ metadata: {} })).metadata, {});
  });

  test("unknown top-level fields are ignored", () => {
    const record = accept(review({ fileType: "csv", extra: { nested: [1, 2, 3] } }));
    assert.equal(record.externalId, "review-1");
  });

  test("sourceURL: optional absolute http(s) URL", () => {
    assert.equal(accept(review()).sourceUrl, null);
    assert.equal(accept(review({ sourceURL: null })).sourceUrl, null);
    assert.equal(
      accept(review({ sourceURL: "https://x.example/r/1?a=b" })).sourceUrl,
      "https://x.example/r/1?a=b",
    );
    assert.equal(accept(review({ sourceURL: "http://x.example" })).sourceUrl, "http://x.example/");
    const rule = "sourceURL must be an absolute http or https URL";
    expectIssue(review({ sourceURL: "ftp://x.example/a" }), "ErrCodeInvalidFieldFormat", ".sourceURL", rule);
    expectIssue(review({ sourceURL: "/reviews/1" }), "ErrCodeInvalidFieldFormat", ".sourceURL", rule);
    expectIssue(
      review({ sourceURL: "javascript:alert(1)" }),
      "ErrCodeInvalidFieldFormat",
      ".sourceURL",
      rule,
    );
    expectIssue(review({ sourceURL: 5 }), "ErrCodeInvalidFieldFormat", ".sourceURL", "(got number)");
    expectIssue(
      review({ sourceURL: "https://u:p@x.example/" }),
      "ErrCodeInvalidFieldFormat",
      ".sourceURL",
      "password",
    );
  });
});

describe("createdAt", () => {
  test("required", () => {
    expectIssue(
      review({ createdAt: undefined }),
      "ErrCodeMissingRequiredField",
      ".createdAt",
      "createdAt is required",
    );
  });

  test("strings are rejected, numeric or date", () => {
    for (const value of ["1716460800", "2024-05-23"]) {
      expectIssue(review({ createdAt: value }), "ErrCodeInvalidFieldFormat", ".createdAt", "not a string");
    }
  });

  test("floats and other types are rejected", () => {
    expectIssue(
      review({ createdAt: 1716460800.5 }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "whole number",
    );
    expectIssue(review({ createdAt: true }), "ErrCodeInvalidFieldFormat", ".createdAt", "(got boolean)");
  });

  test("13-digit milliseconds are floored to seconds", () => {
    assert.equal(accept(review({ createdAt: 1716460800999 })).occurredAt.getTime(), 1716460800000);
    assert.equal(accept(review({ createdAt: 1716460800 })).occurredAt.getTime(), 1716460800000);
  });

  test("more than 13 digits is rejected", () => {
    expectIssue(
      review({ createdAt: 1716460800000000 }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "more than 13 digits",
    );
  });

  test("not before 2000-01-01", () => {
    expectIssue(
      review({ createdAt: 946684799 }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "before 2000-01-01",
    );
    expectIssue(review({ createdAt: 0 }), "ErrCodeInvalidFieldFormat", ".createdAt", "before 2000-01-01");
    expectIssue(review({ createdAt: -5 }), "ErrCodeInvalidFieldFormat", ".createdAt", "before 2000-01-01");
    assert.equal(
      accept(review({ createdAt: 946684800 })).occurredAt.toISOString(),
      "2000-01-01T00:00:00.000Z",
    );
  });

  test("not in the future, with 60 s of clock skew", () => {
    accept(review({ createdAt: NOW_SECONDS + 60 }));
    expectIssue(
      review({ createdAt: NOW_SECONDS + 61 }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "in the future",
    );
    const futureMillis = (NOW_SECONDS + 3600) * 1000;
    expectIssue(
      review({ createdAt: futureMillis }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "in the future",
    );
  });
});

describe("REVIEW", () => {
  test("text must be a non-empty string", () => {
    expectIssue(review({ text: undefined }), "ErrCodeMissingRequiredField", ".text", "text is required");
    expectIssue(review({ text: "" }), "ErrCodeMissingRequiredField", ".text", "text must not be empty");
    expectIssue(review({ text: " \n\t" }), "ErrCodeMissingRequiredField", ".text", "text must not be empty");
    expectIssue(
      review({ text: 5 }),
      "ErrCodeInvalidFieldFormat",
      ".text",
      "text must be a string (got number)",
    );
  });
});

describe("SURVEY", () => {
  test("surveyResponse and its responses are required", () => {
    expectIssue(survey(undefined), "ErrCodeMissingRequiredField", ".surveyResponse.responses", "is required");
    expectIssue(
      review({ type: "SURVEY", text: undefined }),
      "ErrCodeMissingRequiredField",
      ".surveyResponse",
      "surveyResponse is required",
    );
    expectIssue(survey({}), "ErrCodeInvalidFieldFormat", ".surveyResponse.responses", "must be an array");
  });

  test("answer may be a string or a list of strings", () => {
    const record = accept(
      survey([
        { question: "Q1", answer: "one" },
        { question: "Q2", answer: ["a", "b"] },
      ]),
    );
    assert.deepEqual(record.content, {
      kind: "survey",
      responses: [
        { question: "Q1", answer: ["one"], selectedOptions: [] },
        { question: "Q2", answer: ["a", "b"], selectedOptions: [] },
      ],
    });
    const path = ".surveyResponse.responses[0].answer";
    expectIssue(
      survey([{ question: "Q", answer: 9 }]),
      "ErrCodeInvalidFieldFormat",
      path,
      "string or an array of strings",
    );
    expectIssue(
      survey([{ question: "Q", answer: ["a", 9] }]),
      "ErrCodeInvalidFieldFormat",
      `${path}[1]`,
      "strings",
    );
  });

  test("selectedOptions must be a list of strings", () => {
    const path = ".surveyResponse.responses[0].selectedOptions";
    expectIssue(
      survey([{ question: "Q", selectedOptions: "A" }]),
      "ErrCodeInvalidFieldFormat",
      path,
      "array of strings",
    );
    expectIssue(
      survey([{ question: "Q", selectedOptions: [true] }]),
      "ErrCodeInvalidFieldFormat",
      `${path}[0]`,
      "strings",
    );
  });

  test("an answered response needs a question, and the message names the response index", () => {
    const responses = [
      { question: "Q0", answer: "fine" },
      { question: "Q1", answer: "fine" },
      { answer: "no question" },
    ];
    expectIssue(
      survey(responses),
      "ErrCodeMissingRequiredField",
      ".surveyResponse.responses[2].question",
      "question must be non-empty",
    );
    const blank = [{ question: "  ", selectedOptions: ["A"] }];
    expectIssue(
      survey(blank),
      "ErrCodeMissingRequiredField",
      ".surveyResponse.responses[0].question",
      "non-empty",
    );
    const numeric = [{ question: 3, answer: "x" }];
    expectIssue(
      survey(numeric),
      "ErrCodeInvalidFieldFormat",
      ".surveyResponse.responses[0].question",
      "(got number)",
    );
  });

  test("responses with neither answer nor selectedOptions are dropped and need no question", () => {
    const record = accept(
      survey([{ question: "" }, { answer: "", selectedOptions: [] }, { question: "Q", answer: "yes" }, {}]),
    );
    assert.deepEqual(record.content, {
      kind: "survey",
      responses: [{ question: "Q", answer: ["yes"], selectedOptions: [] }],
    });
  });

  test("a survey with no answered response is rejected", () => {
    const rule = "no survey response has an answer or selectedOptions";
    expectIssue(
      survey([{ question: "Q" }]),
      "ErrCodeMissingRequiredField",
      ".surveyResponse.responses",
      rule,
    );
    expectIssue(survey([]), "ErrCodeMissingRequiredField", ".surveyResponse.responses", rule);
  });

  test("a response must be an object", () => {
    expectIssue(
      survey(["x"]),
      "ErrCodeInvalidFieldFormat",
      ".surveyResponse.responses[0]",
      "must be an object",
    );
  });
});

describe("CONVERSATION and FORUM_CONVERSATION_THREAD", () => {
  test("conversation.msgs is required and must hold a message", () => {
    expectIssue(
      review({ type: "CONVERSATION", text: undefined }),
      "ErrCodeMissingRequiredField",
      ".conversation",
      "conversation is required",
    );
    expectIssue(conversation(undefined), "ErrCodeMissingRequiredField", ".conversation.msgs", "is required");
    expectIssue(
      conversation([]),
      "ErrCodeMissingRequiredField",
      ".conversation.msgs",
      "at least one message",
    );
    expectIssue(conversation("hi"), "ErrCodeInvalidFieldFormat", ".conversation.msgs", "must be an array");
  });

  test("actor must be exactly user, agent or bot", () => {
    const msgs = [
      { actor: "user", text: "a" },
      { actor: "customer", text: "b" },
    ];
    const issues = issuesFor(conversation(msgs), 3);
    assert.deepEqual(issues, [
      {
        code: "ErrCodeInvalidFieldFormat",
        recordIndex: 3,
        field: "records[3].conversation.msgs[1].actor",
        msg: 'records[3].conversation.msgs[1].actor: actor must be one of user, agent, bot (got "customer")',
      },
    ]);
    const upper = [{ actor: "User", text: "a" }];
    expectIssue(
      conversation(upper),
      "ErrCodeInvalidFieldFormat",
      ".conversation.msgs[0].actor",
      '(got "User")',
    );
    const numeric = [{ actor: 1, text: "a" }];
    expectIssue(
      conversation(numeric),
      "ErrCodeInvalidFieldFormat",
      ".conversation.msgs[0].actor",
      "(got number)",
    );
  });

  test("actor and text are required on every message", () => {
    const noActor = [{ text: "a" }];
    expectIssue(
      conversation(noActor),
      "ErrCodeMissingRequiredField",
      ".conversation.msgs[0].actor",
      "actor is required",
    );
    const noText = [{ actor: "user", text: "a" }, { actor: "user" }];
    expectIssue(
      conversation(noText),
      "ErrCodeMissingRequiredField",
      ".conversation.msgs[1].text",
      "text is required",
    );
    const badText = [{ actor: "user", text: ["a"] }];
    expectIssue(
      conversation(badText),
      "ErrCodeInvalidFieldFormat",
      ".conversation.msgs[0].text",
      "(got array)",
    );
  });

  test("a message with a bad actor rejects the record even when its text is blank", () => {
    const msgs = [
      { actor: "user", text: "a" },
      { actor: "robot", text: "" },
    ];
    expectIssue(
      conversation(msgs),
      "ErrCodeInvalidFieldFormat",
      ".conversation.msgs[1].actor",
      '(got "robot")',
    );
  });

  test("blank messages are dropped; at least one must remain", () => {
    const record = accept(
      conversation([
        { actor: "user", text: " " },
        { actor: "agent", text: "How can I help?" },
        { actor: "bot", text: "" },
      ]),
    );
    assert.deepEqual(record.content, {
      kind: "messages",
      messages: [{ actor: "agent", text: "How can I help?" }],
    });
    const blank = [
      { actor: "user", text: "" },
      { actor: "bot", text: "\n" },
    ];
    expectIssue(conversation(blank), "ErrCodeMissingRequiredField", ".conversation.msgs", "non-empty text");
  });

  test("a message must be an object", () => {
    expectIssue(
      conversation([null]),
      "ErrCodeInvalidFieldFormat",
      ".conversation.msgs[0]",
      "must be an object",
    );
  });

  test("forum threads keep order (first message is the post) and accept all three actors", () => {
    const msgs = [
      { actor: "user", text: "post" },
      { actor: "agent", text: "reply 1" },
      { actor: "bot", text: "reply 2" },
    ];
    const record = accept(conversation(msgs, { type: "FORUM_CONVERSATION_THREAD" }));
    assert.equal(record.type, "FORUM_CONVERSATION_THREAD");
    assert.deepEqual(record.content, { kind: "messages", messages: msgs });
    const bad = [{ actor: "moderator", text: "x" }];
    expectIssue(
      conversation(bad, { type: "FORUM_CONVERSATION_THREAD" }),
      "ErrCodeInvalidFieldFormat",
      ".conversation.msgs[0].actor",
      "actor must be one of user, agent, bot",
    );
  });
});

describe("AUDIO_RECORDING", () => {
  const path = ".audioRecording.audioURL";

  test("audioRecording and audioURL are required", () => {
    expectIssue(
      audio(undefined),
      "ErrCodeMissingRequiredField",
      ".audioRecording",
      "audioRecording is required",
    );
    expectIssue(audio({}), "ErrCodeMissingRequiredField", path, "audioURL is required");
    expectIssue(
      audio("https://x.example/a.mp3"),
      "ErrCodeInvalidFieldFormat",
      ".audioRecording",
      "must be an object",
    );
  });

  test("every supported extension passes, in any case, and the URL is copied to audioUrl", () => {
    for (const ext of ["mp3", "mp4", "wav", "flac", "ogg", "amr", "webm", "m4a", "MP3", "M4a"]) {
      const url = `https://cdn.example.com/calls/c.${ext}`;
      const record = accept(audio({ audioURL: url }));
      assert.equal(record.audioUrl, url);
      assert.deepEqual(record.content, { kind: "audio", audioUrl: url, transcript: null });
    }
  });

  test("the query string is ignored, so pre-signed S3 URLs pass", () => {
    const url =
      "https://bucket.s3.amazonaws.com/calls/call.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800&X-Amz-Signature=abc";
    assert.equal(accept(audio({ audioURL: url })).audioUrl, url);
  });

  test("unsupported formats and non-http URLs are rejected", () => {
    const ext = "supported audio extension";
    expectIssue(audio({ audioURL: "https://x.example/call.txt" }), "ErrCodeInvalidFieldFormat", path, ext);
    expectIssue(audio({ audioURL: "https://x.example/call" }), "ErrCodeInvalidFieldFormat", path, ext);
    expectIssue(audio({ audioURL: "https://x.example/mp3" }), "ErrCodeInvalidFieldFormat", path, ext);
    expectIssue(audio({ audioURL: "https://x.example/a.mp3/" }), "ErrCodeInvalidFieldFormat", path, ext);
    expectIssue(
      audio({ audioURL: "https://x.example/a.html?f=a.mp3" }),
      "ErrCodeInvalidFieldFormat",
      path,
      ext,
    );
    const http = "absolute http or https URL";
    expectIssue(audio({ audioURL: "ftp://x.example/a.mp3" }), "ErrCodeInvalidFieldFormat", path, http);
    expectIssue(audio({ audioURL: "calls/a.mp3" }), "ErrCodeInvalidFieldFormat", path, http);
    expectIssue(audio({ audioURL: 42 }), "ErrCodeInvalidFieldFormat", path, "(got number)");
  });

  test("transcript units are normalized; empty ones dropped; all empty means no transcript", () => {
    const units = [
      { actor: "agent", text: "Hello", metadata: { startTime: 0, endTime: 1200.5 } },
      { actor: "user", actorID: "caller", text: " " },
      { actor: "user", actorID: null, text: "Hi" },
    ];
    const record = accept(
      audio({ audioURL: "https://x.example/a.ogg", transcript: { conversation: { units } } }),
    );
    assert.deepEqual(record.content, {
      kind: "audio",
      audioUrl: "https://x.example/a.ogg",
      transcript: [
        { actor: "agent", actorId: null, text: "Hello", startMs: 0, endMs: 1200.5 },
        { actor: "user", actorId: null, text: "Hi", startMs: null, endMs: null },
      ],
    });
    const empty = accept(
      audio({
        audioURL: "https://x.example/a.ogg",
        transcript: { conversation: { units: [{ actor: "a", text: "" }] } },
      }),
    );
    assert.equal(empty.content.kind === "audio" && empty.content.transcript, null);
  });

  test("transcript unit rules", () => {
    const withUnits = (units: unknown) =>
      audio({ audioURL: "https://x.example/a.mp3", transcript: { conversation: { units } } });
    const unit = ".audioRecording.transcript.conversation.units";
    expectIssue(
      withUnits([{ text: "x" }]),
      "ErrCodeMissingRequiredField",
      `${unit}[0].actor`,
      "actor is required",
    );
    expectIssue(
      withUnits([{ actor: "a" }]),
      "ErrCodeMissingRequiredField",
      `${unit}[0].text`,
      "text is required",
    );
    expectIssue(
      withUnits([{ actor: "a", actorID: 7, text: "x" }]),
      "ErrCodeInvalidFieldFormat",
      `${unit}[0].actorID`,
      "(got number)",
    );
    expectIssue(
      withUnits([{ actor: "a", text: "x", metadata: { startTime: -1 } }]),
      "ErrCodeInvalidFieldFormat",
      `${unit}[0].metadata.startTime`,
      "non-negative number of milliseconds",
    );
    expectIssue(
      withUnits([{ actor: "a", text: "x", metadata: { startTime: "0" } }]),
      "ErrCodeInvalidFieldFormat",
      `${unit}[0].metadata.startTime`,
      "(got string)",
    );
    expectIssue(
      withUnits([{ actor: "a", text: "x", metadata: { startTime: 500, endTime: 100 } }]),
      "ErrCodeInvalidFieldFormat",
      `${unit}[0].metadata.endTime`,
      "endTime must not be before startTime",
    );
    expectIssue(withUnits("x"), "ErrCodeInvalidFieldFormat", unit, "must be an array");
    expectIssue(
      audio({ audioURL: "https://x.example/a.mp3", transcript: {} }),
      "ErrCodeMissingRequiredField",
      ".audioRecording.transcript.conversation",
      "is required",
    );
  });
});

describe("metadata", () => {
  const meta = (metadata: unknown) => accept(review({ metadata })).metadata;

  test("(a) with the inner metadata wrapper", () => {
    assert.deepEqual(meta({ metadata: { f: { array: { s: ["v1", "v2"] } } } }), {
      f: { type: "s", values: ["v1", "v2"] },
    });
    assert.deepEqual(meta({ metadata: {} }), {});
  });

  test("(b) without the inner wrapper", () => {
    assert.deepEqual(meta({ f: { array: { n: [5] } } }), { f: { type: "n", values: [5] } });
  });

  test("(c) without the array wrapper", () => {
    assert.deepEqual(meta({ f: { s: ["community_forum"] } }), {
      f: { type: "s", values: ["community_forum"] },
    });
  });

  test("(d) a single value is a list of one", () => {
    assert.deepEqual(meta({ f: { array: { s: "Premium" } } }), { f: { type: "s", values: ["Premium"] } });
    assert.deepEqual(meta({ f: { n: 4.5 } }), { f: { type: "n", values: [4.5] } });
    assert.deepEqual(meta({ f: { b: false } }), { f: { type: "b", values: [false] } });
  });

  test("the document's type examples: s, n (int and float), b, several values, and an empty list", () => {
    assert.deepEqual(
      meta({
        metadata: {
          user_tier: { array: { s: ["Premium"] } },
          rating: { array: { n: [4.5] } },
          is_paying_customer: { array: { b: [true] } },
          tags: { array: { s: ["bug", "ui", "mobile"] } },
          none: { array: { s: [] } },
        },
      }),
      {
        user_tier: { type: "s", values: ["Premium"] },
        rating: { type: "n", values: [4.5] },
        is_paying_customer: { type: "b", values: [true] },
        tags: { type: "s", values: ["bug", "ui", "mobile"] },
        none: { type: "s", values: [] },
      },
    );
  });

  test("a lone key named metadata holding one field's definition is a field, not the wrapper", () => {
    assert.deepEqual(meta({ metadata: { s: ["x"] } }), { metadata: { type: "s", values: ["x"] } });
    assert.deepEqual(meta({ metadata: { array: { n: [1] } } }), { metadata: { type: "n", values: [1] } });
    assert.deepEqual(meta({ metadata: { metadata: { s: ["y"] } } }), {
      metadata: { type: "s", values: ["y"] },
    });
  });

  test("mixed types are rejected", () => {
    expectIssue(
      review({ metadata: { rating: { array: { n: [5], s: ["five"] } } } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.rating.array",
      "mixed types",
    );
    expectIssue(
      review({ metadata: { metadata: { rating: { n: [5], b: [true] } } } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.metadata.rating",
      "mixed types",
    );
    expectIssue(
      review({ metadata: { rating: { array: { n: [5] }, s: ["x"] } } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.rating",
      "mixed types",
    );
  });

  test("values must match the type", () => {
    const cases: [unknown, string][] = [
      [{ n: ["5"] }, ".metadata.f.n[0]"],
      [{ array: { s: [1] } }, ".metadata.f.array.s[0]"],
      [{ b: ["true"] }, ".metadata.f.b[0]"],
      [{ s: ["a", null] }, ".metadata.f.s[1]"],
      [{ s: null }, ".metadata.f.s"],
      [{ n: { v: 1 } }, ".metadata.f.n"],
    ];
    for (const [definition, field] of cases) {
      expectIssue(review({ metadata: { f: definition } }), "ErrCodeInvalidFieldFormat", field, "must be");
    }
  });

  test("unknown type keys, empty definitions and non-object definitions are rejected", () => {
    expectIssue(
      review({ metadata: { f: { x: [1] } } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.f.x",
      "unknown metadata type",
    );
    expectIssue(
      review({ metadata: { f: { array: { i: [1] } } } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.f.array.i",
      "unknown",
    );
    expectIssue(review({ metadata: { f: {} } }), "ErrCodeInvalidFieldFormat", ".metadata.f", "one type key");
    expectIssue(
      review({ metadata: { f: "v" } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.f",
      "must be an object",
    );
    expectIssue(
      review({ metadata: { f: ["v"] } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.f",
      "(got array)",
    );
    expectIssue(
      review({ metadata: { f: { array: ["v"] } } }),
      "ErrCodeInvalidFieldFormat",
      ".metadata.f.array",
      "(got array)",
    );
  });

  test("field names: non-empty, at most 128 characters", () => {
    expectIssue(
      review({ metadata: { "": { s: ["x"] } } }),
      "ErrCodeInvalidFieldFormat",
      '.metadata[""]',
      "must not be empty",
    );
    const long = "f".repeat(129);
    const issues = issuesFor(review({ metadata: { [long]: { s: ["x"] } } }));
    assert.equal(issues[0]?.code, "ErrCodeInvalidFieldFormat");
    assert.match(
      issues[0]?.msg ?? "",
      /^records\[0\]\.metadata\.f+…: metadata field name must be at most 128/,
    );
    assert.ok(Object.hasOwn(meta({ ["g".repeat(128)]: { s: ["x"] } }), "g".repeat(128)));
  });

  test("a field named __proto__ stays an ordinary field", () => {
    const metadata = meta(JSON.parse('{"__proto__": {"s": ["x"]}, "constructor": {"n": [1]}}'));
    assert.deepEqual(Object.keys(metadata), ["__proto__", "constructor"]);
    assert.equal(Object.getPrototypeOf(metadata), Object.prototype);
    const roundTrip = JSON.parse(JSON.stringify(metadata));
    assert.deepEqual(Object.getOwnPropertyDescriptor(roundTrip, "__proto__")?.value, {
      type: "s",
      values: ["x"],
    });
  });

  test("odd field names are quoted in paths", () => {
    expectIssue(
      review({ metadata: { "a.b": { s: [1] } } }),
      "ErrCodeInvalidFieldFormat",
      '.metadata["a.b"].s[0]',
      "strings",
    );
  });
});

describe("hostile input", () => {
  function nested(depth: number): unknown {
    let value: unknown = "bottom";
    for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { k: value };
    return value;
  }

  test("deep nesting is rejected, even in unknown fields", () => {
    const issues = issuesFor(review({ extra: nested(10_000) }));
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.code, "ErrCodeInvalidFieldFormat");
    assert.match(issues[0]?.msg ?? "", /^records\[0\]\.extra[^:]*: is nested deeper than 32 levels$/);
    accept(review({ extra: nested(20) }));
  });

  test("any string over 200 000 characters is rejected", () => {
    expectIssue(
      review({ text: "x".repeat(200_001) }),
      "ErrCodeInvalidFieldFormat",
      ".text",
      "longer than 200000",
    );
    expectIssue(
      review({ note: "x".repeat(200_001) }),
      "ErrCodeInvalidFieldFormat",
      ".note",
      "longer than 200000",
    );
    assert.equal(accept(review({ text: "x".repeat(200_000) })).content.kind, "text");
  });

  test("the NUL character is rejected (Postgres cannot store it)", () => {
    expectIssue(review({ text: "a\u0000b" }), "ErrCodeInvalidFieldFormat", ".text", "NUL");
  });

  test("non-plain objects and non-JSON values are rejected", () => {
    class Thing {
      id = "x";
    }
    expectIssue(new Thing(), "ErrCodeInvalidFieldFormat", "", "record must be an object");
    expectIssue(review({ metadata: new Map() }), "ErrCodeInvalidFieldFormat", ".metadata", "plain JSON data");
    expectIssue(
      review({ createdAt: new Date() }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "plain JSON data",
    );
    expectIssue(
      review({ createdAt: Number.NaN }),
      "ErrCodeInvalidFieldFormat",
      ".createdAt",
      "finite number",
    );
    expectIssue(review({ id: 10n }), "ErrCodeInvalidFieldFormat", ".id", "not JSON data (got bigint)");
    expectIssue(review({ x: () => 1 }), "ErrCodeInvalidFieldFormat", ".x", "not JSON data (got function)");
  });

  test("throwing getters and proxies become issues, never exceptions", () => {
    const getter = review();
    Object.defineProperty(getter, "text", {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });
    expectIssue(getter, "ErrCodeInvalidFieldFormat", "", "could not be read");
    const trap = new Proxy(
      {},
      {
        get() {
          throw new Error("boom");
        },
      },
    );
    const result = validateBatch(trap, NOW);
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.issues[0]?.code, "ErrCodeBadRequest");
  });

  test("cyclic and self-repeating object graphs end", () => {
    const cyclic: Json = review();
    cyclic.self = cyclic;
    assert.match(issuesFor(cyclic)[0]?.msg ?? "", /nested deeper than 32 levels/);
    const wide: unknown[] = [];
    for (let i = 0; i < 20_000; i++) wide.push(wide);
    assert.match(issuesFor(review({ wide }))[0]?.msg ?? "", /more than 250000 values/);
  });
});

describe("generated malformed input", () => {
  /** mulberry32: small, deterministic, good enough to pick cases. */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const rand = random(20240523);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
  const huge = "h".repeat(200_001);
  const deep = (() => {
    let value: unknown = null;
    for (let i = 0; i < 200; i++) value = rand() < 0.5 ? [value] : { d: value };
    return value;
  })();

  function validRecord(): Json {
    return pick([
      () => review(),
      () => survey([{ question: "Q", answer: "A" }]),
      () => conversation([{ actor: "user", text: "hi" }]),
      () => conversation([{ actor: "user", text: "post" }], { type: "FORUM_CONVERSATION_THREAD" }),
      () => audio({ audioURL: "https://x.example/a.mp3" }),
    ])();
  }

  const notString = [null, undefined, 0, 1.5, -1, true, false, [], {}, ["a"], { a: 1 }, deep, huge];
  const notTime = [
    ...notString,
    "1716460800",
    "2024-05-23",
    "",
    1716460800.25,
    0,
    1e20,
    -1,
    NOW_SECONDS + 1000,
  ];
  const notObject = [null, undefined, 0, true, "x", "", [], [{}], huge, deep];
  const notArray = [null, undefined, 0, true, "x", {}, { 0: {} }, huge, deep];
  const badActor = ["User", "customer", "", " user", "AGENT", 1, null, [], {}, huge];

  /** Each mutation makes a valid record certainly invalid. */
  const mutations: ((r: Json) => unknown)[] = [
    (r) => ({ ...r, id: pick([...notString, "", "   ", "x".repeat(513)]) }),
    (r) => ({ ...r, fileID: pick([...notString, "", "  "]) }),
    (r) => ({ ...r, type: pick([...notString, "review", "CHAT", "REVIEW "]) }),
    (r) => ({ ...r, createdAt: pick(notTime) }),
    (r) => ({ ...r, metadata: pick(notObject) }),
    (r) => ({
      ...r,
      metadata: {
        f: pick([...notObject, { n: ["x"] }, { s: [1] }, { array: { n: [1], s: ["a"] } }, { q: [1] }]),
      },
    }),
    (r) => ({ ...r, sourceURL: pick([0, true, [], {}, "nope", "ftp://x.example/", "/rel", huge]) }),
    (r) => ({ ...r, [pick(["extra", "text", "metadata", "id"])]: deep }),
    (r) => ({ ...r, [pick(["note", "text", "fileID"])]: huge }),
    (r) => Object.fromEntries(Object.keys(r).map((k) => [k, null])),
    (r) => pick([null, undefined, 0, "record", [], [r], huge, deep]),
    (r) => ({ ...r, type: "REVIEW", text: pick([null, undefined, 0, true, "", " \t ", [], {}, huge, deep]) }),
    (r) => ({ ...r, type: "SURVEY", surveyResponse: pick(notObject) }),
    (r) => ({ ...r, type: "SURVEY", surveyResponse: { responses: pick(notArray) } }),
    (r) => ({
      ...r,
      type: "SURVEY",
      surveyResponse: {
        responses: [
          pick([
            { answer: "a" },
            { question: "", selectedOptions: ["x"] },
            { question: "Q", answer: 9 },
            null,
            {},
          ]),
        ],
      },
    }),
    (r) => ({
      ...r,
      type: pick(["CONVERSATION", "FORUM_CONVERSATION_THREAD"]),
      conversation: pick(notObject),
    }),
    (r) => ({ ...r, type: "CONVERSATION", conversation: { msgs: pick([...notArray, []]) } }),
    (r) => ({ ...r, type: "CONVERSATION", conversation: { msgs: [{ actor: pick(badActor), text: "x" }] } }),
    (r) => ({
      ...r,
      type: "CONVERSATION",
      conversation: { msgs: [{ actor: "user", text: pick([...notString, ""]) }] },
    }),
    (r) => ({ ...r, type: "AUDIO_RECORDING", audioRecording: pick(notObject) }),
    (r) => ({
      ...r,
      type: "AUDIO_RECORDING",
      audioRecording: {
        audioURL: pick([...notString, "", "https://x.example/a.txt", "ftp://x.example/a.mp3", "a.mp3"]),
      },
    }),
    (r) => ({
      ...r,
      type: "AUDIO_RECORDING",
      audioRecording: {
        audioURL: "https://x.example/a.mp3",
        transcript: pick([
          0,
          "t",
          [],
          {},
          { conversation: { units: [{ actor: "a", text: "x", metadata: { startTime: -1 } }] } },
        ]),
      },
    }),
  ];

  const bodies: ((records: unknown[]) => unknown)[] = [
    (records) => ({ records }),
    (records) => ({ records, extra: pick([null, 1, "x"]) }),
    () =>
      pick([
        null,
        undefined,
        0,
        "body",
        [],
        {},
        { records: null },
        { records: {} },
        { records: [] },
        { records: huge },
      ]),
    () => ({ records: Array.from({ length: 101 }, () => validRecord()) }),
  ];

  test("at least 500 malformed bodies: validateBatch never throws and always rejects with a known code", () => {
    let cases = 0;
    const codesSeen = new Set<IngestionErrorCode>();
    const mutationUses = mutations.map(() => 0);
    for (let i = 0; i < 600; i++) {
      const records = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => validRecord());
      const at = Math.floor(rand() * records.length);
      const m = Math.floor(rand() * mutations.length);
      mutationUses[m] = (mutationUses[m] ?? 0) + 1;
      records[at] = (mutations[m] as (r: Json) => unknown)(records[at] as Json) as Json;
      const body = pick(bodies)(records);
      let result: ReturnType<typeof validateBatch> | undefined;
      assert.doesNotThrow(() => {
        result = validateBatch(body, NOW);
      });
      if (result === undefined || result.ok)
        assert.fail(`case ${i} was accepted: ${JSON.stringify(body)?.slice(0, 300)}`);
      assert.ok(result.issues.length >= 1 && result.issues.length <= 50);
      for (const issue of result.issues) {
        assert.ok(CODES.includes(issue.code), issue.code);
        codesSeen.add(issue.code);
        assert.ok(issue.field.startsWith("records"), issue.field);
        assert.ok(issue.msg.startsWith(`${issue.field}: `), issue.msg);
        assert.ok(issue.msg.length < 400, issue.msg.slice(0, 100));
      }
      cases++;
    }
    assert.ok(cases >= 500);
    // The generator really exercised every kind of damage and every error code.
    assert.deepEqual([...codesSeen].sort(), [...CODES].sort());
    assert.ok(Math.min(...mutationUses) >= 5, JSON.stringify(mutationUses));
  });
});
