import { randomInt } from "node:crypto";
import type { Socket } from "node:net";
import type { ErrorObject } from "ajv";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";

/** The error codes of the outside contract (CONTRACT.md, "HTTP API"). */
export type ErrorCode =
  | "ErrCodeMissingRequiredField"
  | "ErrCodeInvalidFieldFormat"
  | "ErrCodeBadRequest"
  | "ErrCodeTooManyRecords"
  | "ErrCodePayloadTooLarge"
  | "ErrCodeRateLimited"
  | "ErrCodeUnauthorized"
  | "ErrCodeForbidden"
  | "ErrCodeNotFound"
  | "ErrCodeUnavailable"
  | "ErrCodeInternal";

/** Every error response: seed 000's shape. */
export interface ErrorBody {
  msg: string;
  code: ErrorCode;
  /** The request's id, in every log line of the request, so support can find what happened. */
  referenceID: string;
}

/** An error meant for the client: its status, code and message are sent as they are. */
export class ApiError extends Error {
  override name = "ApiError";
  readonly statusCode: number;
  readonly code: ErrorCode;
  /** Sent as `Retry-After` (seconds) when set. */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    statusCode: number,
    code: ErrorCode,
    msg: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(msg, options);
    this.statusCode = statusCode;
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** `field` is a path such as `body.auth.header_name`; `rule` says what is wrong with it. */
export function invalidField(field: string, rule: string): ApiError {
  return new ApiError(400, "ErrCodeInvalidFieldFormat", `${field}: ${rule}`);
}

export function missingField(field: string, rule = "required"): ApiError {
  return new ApiError(400, "ErrCodeMissingRequiredField", `${field}: ${rule}`);
}

/** The same answer for ids that do not exist and ids of another organization, so nothing leaks. */
export function notFound(what: string): ApiError {
  return new ApiError(404, "ErrCodeNotFound", `${what} not found`);
}

const REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/** A short id like `8B5OQA2K` (8 characters, 40 bits): easy to read out to support, unique enough to grep. */
export function newReferenceId(): string {
  let out = "";
  for (let i = 0; i < 8; i++) out += REFERENCE_ALPHABET[randomInt(REFERENCE_ALPHABET.length)];
  return out;
}

const PLAIN_SEGMENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** `/auth/header_name` → `.auth.header_name`, `/events/0` → `.events[0]`; odd keys are quoted and shortened. */
function pointerToPath(pointer: string): string {
  if (pointer === "") return "";
  return pointer
    .slice(1)
    .split("/")
    .map((raw) => segment(raw.replace(/~1/g, "/").replace(/~0/g, "~")))
    .join("");
}

function segment(key: string): string {
  if (/^(0|[1-9]\d{0,8})$/.test(key)) return `[${key}]`;
  if (PLAIN_SEGMENT.test(key)) return `.${key}`;
  const shown = key.length > 40 ? `${key.slice(0, 40)}…` : key;
  return `[${JSON.stringify(shown)}]`;
}

const PART_NAMES: Record<string, string> = {
  body: "body",
  querystring: "query",
  params: "params",
  headers: "headers",
};

const FORMAT_RULES: Record<string, string> = {
  "date-time": "must be an ISO 8601 date-time with a time zone, e.g. 2026-06-01T00:00:00Z",
  uri: "must be an absolute URL",
};

function article(type: string): string {
  return type
    .split(",")
    .map((t) =>
      t === "object" || t === "array" || t === "integer" ? `an ${t}` : t === "null" ? "null" : `a ${t}`,
    )
    .join(" or ");
}

function custom(e: ErrorObject): string | undefined {
  const m = e.parentSchema?.["x-message"];
  return typeof m === "string" ? m : undefined;
}

/**
 * Picks the error to report. Inside `anyOf`, a branch whose type matched but whose constraint failed
 * (a string that is too long) says more than "matches none of the shapes".
 */
function pickError(errors: ErrorObject[]): ErrorObject | undefined {
  const union = errors.find((e) => e.keyword === "anyOf" || e.keyword === "oneOf");
  if (!union) return errors[0];
  const specific = errors.find(
    (e) =>
      e !== union &&
      !["type", "const", "enum", "anyOf", "oneOf"].includes(e.keyword) &&
      e.instancePath.startsWith(union.instancePath),
  );
  return specific ?? union;
}

/**
 * Turns a schema validation failure into the error answer: `ErrCodeMissingRequiredField` for a missing field,
 * `ErrCodeInvalidFieldFormat` for anything else, and a message that names the field. Values are never echoed:
 * the field may be a credential.
 */
export function validationError(errors: ErrorObject[], part: string): ApiError {
  const root = PART_NAMES[part] ?? part;
  const e = pickError(errors);
  if (!e) return invalidField(root, "is invalid");
  const path = `${root}${pointerToPath(e.instancePath)}`;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return missingField(`${path}${segment(String(p.missingProperty))}`);
    case "additionalProperties":
      return invalidField(`${path}${segment(String(p.additionalProperty))}`, "unknown field");
    case "type":
      if (e.instancePath === "" && (e.data === undefined || e.data === null) && part === "body") {
        return missingField(root, "required (a JSON object)");
      }
      return invalidField(path, `must be ${article(String(p.type))}`);
    case "enum": {
      const allowed = (p.allowedValues as unknown[]).map((v) => String(v));
      return invalidField(path, `must be one of ${allowed.slice(0, 12).join(", ")}`);
    }
    case "const":
      return invalidField(path, `must be ${JSON.stringify(p.allowedValue)}`);
    case "format":
      return invalidField(path, custom(e) ?? FORMAT_RULES[String(p.format)] ?? `must be a valid ${p.format}`);
    case "pattern":
      return invalidField(path, custom(e) ?? "has an invalid format");
    case "anyOf":
    case "oneOf":
      return invalidField(path, custom(e) ?? "has an invalid type or shape");
    case "minLength":
      return invalidField(
        path,
        p.limit === 1 ? "must not be empty" : `must be at least ${p.limit} characters`,
      );
    case "maxLength":
      return invalidField(path, `must be at most ${p.limit} characters`);
    case "minItems":
      return invalidField(path, p.limit === 1 ? "must not be empty" : `must have at least ${p.limit} items`);
    case "maxItems":
      return invalidField(path, `must have at most ${p.limit} items`);
    case "uniqueItems":
      return invalidField(path, `must not contain duplicates (items ${p.j} and ${p.i} are equal)`);
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return invalidField(path, `must be ${p.comparison} ${p.limit}`);
    default:
      return invalidField(path, custom(e) ?? e.message ?? "is invalid");
  }
}

/** Error codes that mean Postgres cannot be reached or refuses work for now (postgres.js and SQLSTATE). */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01",
  "57P02",
  "57P03",
  "53300",
  // The database or its role is gone at (re)connect time: dropped, renamed or misconfigured.
  "3D000",
  "28000",
  "28P01",
]);

/** ioredis's messages when the connection is down and the producer fails fast (no offline queue). */
const REDIS_DOWN = [/Stream isn't writeable/i, /Connection is closed/i, /connect ECONNREFUSED/i];

/** Whether `err` (or anything in its cause chain) means Postgres or Redis is out of reach. */
export function isUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_CODES.has(code) || code.startsWith("08"))) return true;
    if (e.name === "MaxRetriesPerRequestError") return true;
    if (REDIS_DOWN.some((re) => re.test(e.message))) return true;
  }
  return false;
}

/** Fastify's own errors (body parsing, routing) that are the client's doing, mapped to the contract. */
function fromFramework(err: FastifyError): ApiError | undefined {
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError(413, "ErrCodePayloadTooLarge", "body: larger than the 1 MB limit");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError(415, "ErrCodeBadRequest", "headers.content-type: must be application/json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError(400, "ErrCodeBadRequest", "body: empty, but Content-Type says JSON");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError(
        400,
        "ErrCodeBadRequest",
        "body: not valid JSON (or it has a __proto__ or constructor.prototype key)",
      );
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new ApiError(400, "ErrCodeBadRequest", "headers.content-length: does not match the body");
    case "FST_ERR_BAD_URL":
      return new ApiError(400, "ErrCodeBadRequest", "the URL is not validly encoded");
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new ApiError(414, "ErrCodeBadRequest", "params: a path parameter is too long");
  }
  if (err.statusCode === 413) return new ApiError(413, "ErrCodePayloadTooLarge", "body: too large");
  if (typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
    return new ApiError(err.statusCode, "ErrCodeBadRequest", "the request could not be read");
  }
  return undefined;
}

/** Maps anything thrown while serving a request to the error answer. Unknown errors are server faults. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as FastifyError;
  if (fe && Array.isArray(fe.validation)) {
    return validationError(fe.validation as ErrorObject[], fe.validationContext ?? "body");
  }
  if (isUnavailable(err)) {
    return new ApiError(503, "ErrCodeUnavailable", "a backing service is unavailable; try again shortly", {
      cause: err,
    });
  }
  if (fe && typeof fe.code === "string") {
    const mapped = fromFramework(fe);
    if (mapped) return mapped;
  }
  return new ApiError(500, "ErrCodeInternal", "internal error; quote the referenceID to support", {
    cause: err,
  });
}

/**
 * Sends the error body and logs it under the request's id: server faults with the whole error, client
 * errors with the message only (a validation error's raw details may hold the value that was sent).
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const apiError = toApiError(err);
  const body: ErrorBody = { msg: apiError.message, code: apiError.code, referenceID: request.id };
  if (apiError.code === "ErrCodeUnavailable") {
    // One line per request without the stack: the dependency monitor already logged the outage itself.
    const cause = apiError.cause instanceof Error ? apiError.cause.message : undefined;
    request.log.info(
      { code: apiError.code, status: apiError.statusCode, cause },
      `request refused: ${apiError.message}`,
    );
  } else if (apiError.statusCode >= 500) {
    request.log.error(
      { err: apiError.cause ?? err, code: apiError.code },
      `request failed: ${apiError.message}`,
    );
  } else {
    request.log.info(
      { code: apiError.code, status: apiError.statusCode },
      `request refused: ${apiError.message}`,
    );
  }
  if (apiError.statusCode === 401) void reply.header("www-authenticate", 'Bearer realm="escalation-shield"');
  if (apiError.statusCode === 503) void reply.header("retry-after", "5");
  if (apiError.retryAfterSeconds !== undefined)
    void reply.header("retry-after", String(apiError.retryAfterSeconds));
  return reply.code(apiError.statusCode).type("application/json; charset=utf-8").send(body);
}

/** For `setErrorHandler`. */
export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(request, reply, err);
}

/** For `setNotFoundHandler`: unknown routes answer like unknown ids. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(request, reply, notFound(`route ${request.method} ${request.url.split("?")[0]}`));
}

/** Fastify's `frameworkErrors` option: malformed URLs and overlong parameters, before any route runs. */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  sendError(request, reply, err);
}

/**
 * Fastify's `clientErrorHandler` option: requests Node's HTTP parser rejects (bad header bytes, oversized
 * headers) never reach a route, so the answer is written to the socket directly, still in the contract's shape.
 */
export function clientErrorHandler(
  this: { log?: { info(obj: object, msg: string): void } } | undefined,
  err: NodeJS.ErrnoException,
  socket: Socket,
): void {
  if (err.code === "ECONNRESET" || socket.destroyed || !socket.writable) return;
  const status =
    err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
  const referenceID = newReferenceId();
  const body = JSON.stringify({
    msg:
      status === 431 ? "headers: too large" : status === 408 ? "request timed out" : "malformed HTTP request",
    code: "ErrCodeBadRequest",
    referenceID,
  } satisfies ErrorBody);
  this?.log?.info({ referenceID, err: err.code }, "malformed HTTP request refused");
  socket.end(
    `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : status === 408 ? "Request Timeout" : "Bad Request"}\r\n` +
      `Connection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
