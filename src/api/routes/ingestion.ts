import { timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { queueEvaluations } from "../../automations/queue.ts";
import { findIntegrationByKeyHash, storeRecords } from "../../ingestion/store.ts";
import type { IngestionIssue, NormalizedRecord } from "../../ingestion/types.ts";
import { validateBatch, validateRecord } from "../../ingestion/validate.ts";
import { hashToken } from "../../orgs.ts";
import type { Runtime } from "../../runtime.ts";
import { AuthFailures } from "../auth-failures.ts";
import { ApiError } from "../errors.ts";
import { limitRequests } from "../rate-limit.ts";

/** Seed 000: 200 KB per request; the same bound applies to a gzip body once decompressed. */
export const INGEST_BODY_LIMIT = 200 * 1024;

const gunzipAsync = promisify(gunzip);
const utf8 = new TextDecoder("utf-8", { fatal: true });

declare module "fastify" {
  interface FastifyRequest {
    integration: { id: string; orgId: string; dataMutability: boolean; keyHash: string } | null;
  }
}

function tooLarge(): ApiError {
  return new ApiError(
    413,
    "ErrCodePayloadTooLarge",
    `body: larger than the ${INGEST_BODY_LIMIT / 1024} KB limit`,
  );
}

/**
 * JSON bodies, optionally gzip-compressed (`Content-Encoding: gzip`). The compressed size and the
 * decompressed size are both bounded by {@link INGEST_BODY_LIMIT}, so a gzip bomb stops at the limit.
 * Bytes that are not UTF-8 are refused rather than silently replaced.
 */
function registerJsonParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    "application/json",
    { parseAs: "buffer", bodyLimit: INGEST_BODY_LIMIT },
    async (request: FastifyRequest, raw: Buffer) => {
      const encoding = String(request.headers["content-encoding"] ?? "identity").toLowerCase();
      let bytes = raw;
      if (encoding === "gzip") {
        try {
          bytes = await gunzipAsync(raw, { maxOutputLength: INGEST_BODY_LIMIT });
        } catch (err) {
          if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
          throw new ApiError(400, "ErrCodeBadRequest", "body: not valid gzip data", { cause: err });
        }
      } else if (encoding !== "identity") {
        throw new ApiError(415, "ErrCodeBadRequest", "headers.content-encoding: must be gzip or absent");
      }
      let text: string;
      try {
        text = utf8.decode(bytes);
      } catch (err) {
        throw new ApiError(400, "ErrCodeBadRequest", "body: not valid UTF-8", { cause: err });
      }
      if (text.trim() === "")
        throw new ApiError(400, "ErrCodeBadRequest", 'body: empty; send {"records": [...]}');
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        throw new ApiError(400, "ErrCodeBadRequest", `body: not valid JSON (${(err as Error).message})`, {
          cause: err,
        });
      }
    },
  );
}

/** The answer for a refused batch: the first problem's code, and up to five problems in the message. */
function batchError(issues: IngestionIssue[]): ApiError {
  const first = issues[0] as IngestionIssue;
  const shown = issues.slice(0, 5).map((i) => i.msg);
  const more = issues.length > 5 ? `; and ${issues.length - 5} more` : "";
  return new ApiError(400, first.code, `${shown.join("; ")}${more}`);
}

/**
 * Checks every audio URL of a batch (see AudioChecker for its limits); returns the problems found. The
 * caller reads a generic reason; what the check actually met goes to the server log only.
 */
async function audioIssues(
  rt: Runtime,
  request: FastifyRequest,
  records: NormalizedRecord[],
): Promise<IngestionIssue[]> {
  const audio = records.flatMap((r, index) =>
    r.content.kind === "audio" ? [{ index, url: r.content.audioUrl }] : [],
  );
  const refusals = await rt.audio.check(audio.map((a) => a.url));
  const issues: IngestionIssue[] = [];
  refusals.forEach((refusal, j) => {
    const a = audio[j];
    if (!refusal || !a) return;
    const field = `records[${a.index}].audioRecording.audioURL`;
    // The host only: a signed storage URL carries its credential in the query.
    request.log.info(
      { field, host: URL.parse(a.url)?.host, reason: refusal.reason, detail: refusal.detail },
      "audio URL refused",
    );
    issues.push({
      code: "ErrCodeInvalidFieldFormat",
      recordIndex: a.index,
      field,
      msg: `${field}: ${refusal.message}`,
    });
  });
  return issues;
}

/** Finds the feedback integration of the `api-key` header; hashes are compared again in constant time. */
async function authenticateIngestion(rt: Runtime, request: FastifyRequest): Promise<void> {
  const header = request.headers["api-key"];
  const key = Array.isArray(header) ? header[0] : header;
  if (!key || key.length > 256) {
    throw new ApiError(
      401,
      "ErrCodeUnauthorized",
      "headers.api-key: required (your feedback integration's API key)",
    );
  }
  const hash = hashToken(key);
  const found = await findIntegrationByKeyHash(rt.database.db, hash);
  if (!found || !timingSafeEqual(Buffer.from(found.keyHash, "hex"), Buffer.from(hash, "hex"))) {
    throw new ApiError(401, "ErrCodeUnauthorized", "headers.api-key: invalid API key");
  }
  request.integration = {
    id: found.id,
    orgId: found.orgId,
    dataMutability: found.dataMutability,
    keyHash: hash,
  };
}

/** Builds the ready-to-run cURL command the validator hands back for the real endpoint. */
function curlCommand(publicUrl: string, body: unknown): string {
  const json = JSON.stringify(body).replace(/'/g, "'\\''");
  return `curl -X POST '${publicUrl}/webhook/custom/all' -H 'api-key: <your-api-key>' -H 'Content-Type: application/json' --data-raw '${json}'`;
}

/** How a record will be stored, for the validator's preview. */
function preview(r: NormalizedRecord) {
  return {
    id: r.externalId,
    fileID: r.fileId,
    type: r.type,
    createdAt: r.occurredAt.toISOString(),
    sourceURL: r.sourceUrl,
    content: r.content,
    metadata: r.metadata,
  };
}

/**
 * `POST /webhook/custom/all` (seed 000) and `POST /webhook/custom/validate`. Ingestion is all or nothing:
 * one invalid record refuses the request and nothing of it is stored. Stored and replaced records are handed
 * to the evaluator after the commit; if that hand-off is lost, the evaluation outbox sweeper repeats it.
 */
export async function ingestionRoutes(app: FastifyInstance, { rt }: { rt: Runtime }): Promise<void> {
  app.decorateRequest("integration", null);

  await app.register(async (scope) => {
    registerJsonParser(scope);
    const failures = new AuthFailures(rt.redis, rt.config.queuePrefix);
    scope.addHook("onRequest", (request) =>
      failures.guard(request, () => authenticateIngestion(rt, request)),
    );
    await limitRequests(scope, rt, {
      name: "ingest",
      max: rt.config.ingestRateLimitPerMinute,
      per: "API key",
      key: (request) => request.integration?.keyHash ?? request.ip,
      hook: "preParsing",
    });
    scope.post(
      "/webhook/custom/all",
      {
        schema: {
          tags: ["ingestion"],
          summary: "Ingest feedback records",
          description:
            "Seed 000's custom webhook: `{\"records\": [...]}` of up to 100 records, at most 200 KB (gzip accepted, also 200 KB decompressed), with the feedback integration's key in the `api-key` header. All or nothing: one invalid record refuses the request with 400 naming the record index, the field and the rule. Rate limit: INGEST_RATE_LIMIT_PER_MINUTE per key (default 2000).",
          security: [{ ingestionKey: [] }],
        },
      },
      async (request) => {
        const integration = request.integration;
        if (!integration) throw new ApiError(401, "ErrCodeUnauthorized", "headers.api-key: required");
        const result = validateBatch(request.body);
        if (!result.ok) throw batchError(result.issues);
        const audio = await audioIssues(rt, request, result.records);
        if (audio.length > 0) throw batchError(audio);
        const stored = await rt.database.db.transaction((tx) =>
          storeRecords(tx, integration, result.records),
        );
        await queueEvaluations(rt.evaluationQueue, stored.stored);
        return {
          received: result.records.length,
          created: stored.created,
          replaced: stored.replaced,
          skipped: stored.skipped,
          record_ids: stored.stored.map((s) => s.id),
        };
      },
    );
  });

  await app.register(async (scope) => {
    registerJsonParser(scope);
    await limitRequests(scope, rt, {
      name: "validate",
      max: rt.config.validateRateLimitPerMinute,
      per: "client address",
      key: (request) => request.ip,
    });
    scope.post(
      "/webhook/custom/validate",
      {
        schema: {
          tags: ["ingestion"],
          summary: "Validate a payload without storing it",
          description:
            "No key needed (rate-limited per client address). The same rules as ingestion except that audio URLs are not fetched: a verdict per record, a preview of how each will be stored, and a ready-to-run cURL command for the real endpoint.",
        },
      },
      async (request) => {
        const body = request.body as { records?: unknown } | null;
        const batch = validateBatch(body);
        const batchIssues = batch.ok ? [] : batch.issues.filter((i) => i.recordIndex === undefined);
        const raw = Array.isArray(body?.records) ? (body.records as unknown[]).slice(0, 100) : [];
        const verdicts = raw.map((r, index) => {
          const v = validateRecord(r, index);
          return v.ok
            ? { index, valid: true, issues: [], preview: preview(v.record) }
            : {
                index,
                valid: false,
                issues: v.issues.map(({ code, field, msg }) => ({ code, field, msg })),
                preview: null,
              };
        });
        const valid = batch.ok;
        return {
          valid,
          batch_issues: batchIssues.map(({ code, field, msg }) => ({ code, field, msg })),
          records: verdicts,
          note: "audio URLs are not fetched here; the real endpoint checks each one answers 2xx with an audio type within 10 s",
          curl: valid ? curlCommand(rt.config.publicUrl, body) : null,
        };
      },
    );
  });
}
