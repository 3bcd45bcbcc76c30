import { createHash } from "node:crypto";
import postgres from "postgres";
import { Agent, request as undiciRequest } from "undici";
import { startServer } from "../../src/api/server.ts";
import { createOrganization } from "../../src/orgs.ts";
import { type Stack, startStack } from "./stack.ts";

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The raw body, to assert that a secret appears nowhere in it. */
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers.
  json: any;
}

export interface RequestOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is, instead of `body`. */
  raw?: string | Buffer;
  headers?: Record<string, string>;
  /** Bearer token; `null` sends no Authorization header. Defaults to the client's token. */
  token?: string | null;
}

/** A tiny client of the admin API over real HTTP, with its own connection pool. */
export interface ApiClient {
  url: string;
  token: string;
  request(method: string, path: string, options?: RequestOptions): Promise<ApiResponse>;
  get(path: string, options?: RequestOptions): Promise<ApiResponse>;
  post(path: string, body?: unknown, options?: RequestOptions): Promise<ApiResponse>;
  patch(path: string, body: unknown, options?: RequestOptions): Promise<ApiResponse>;
  delete(path: string, options?: RequestOptions): Promise<ApiResponse>;
  /** The same server with another token. */
  as(token: string): ApiClient;
}

/** A change the admin API accepted: every one must be in the audit log when the stack closes. */
interface AcceptedWrite {
  method: string;
  path: string;
  status: number;
  referenceId: string;
  tokenHash: string;
}

const READS = new Set(["GET", "HEAD", "OPTIONS"]);

function client(url: string, token: string, agent: Agent, writes: AcceptedWrite[]): ApiClient {
  const request = async (
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<ApiResponse> => {
    const headers: Record<string, string> = { ...options.headers };
    const bearer = options.token === undefined ? token : options.token;
    if (bearer !== null) headers.authorization ??= `Bearer ${bearer}`;
    let body: string | Buffer | undefined = options.raw;
    if (body === undefined && options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await undiciRequest(`${url}${path}`, {
      method: method as "GET",
      headers,
      body,
      dispatcher: agent,
    });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    const bearerSent = /^Bearer (\S+)$/.exec(headers.authorization ?? "")?.[1];
    if (res.statusCode < 300 && !READS.has(method) && path.startsWith("/api/") && bearerSent) {
      writes.push({
        method,
        path,
        status: res.statusCode,
        referenceId: String(res.headers["x-reference-id"]),
        tokenHash: createHash("sha256").update(bearerSent).digest("hex"),
      });
    }
    return { status: res.statusCode, headers: res.headers, text, json };
  };
  return {
    url,
    token,
    request,
    get: (path, o) => request("GET", path, o),
    post: (path, body, o) => request("POST", path, { ...o, body }),
    patch: (path, body, o) => request("PATCH", path, { ...o, body }),
    delete: (path, o) => request("DELETE", path, o),
    as: (other) => client(url, other, agent, writes),
  };
}

export interface ApiStack {
  stack: Stack;
  api: ApiClient;
  close(): Promise<void>;
}

/**
 * A stack (own database, queue prefix, organization, delivery worker unless `worker: false`) with the HTTP API
 * listening on 127.0.0.1 and a free port, and a client holding the organization's first admin key.
 */
export async function startApiStack(
  options: { env?: Record<string, string>; worker?: boolean | "all" } = {},
): Promise<ApiStack> {
  const stack = await startStack({
    worker: options.worker,
    env: { HOST: "127.0.0.1", PORT: "0", ...options.env },
  });
  const server = await startServer(stack.rt);
  const agent = new Agent({ keepAliveTimeout: 1000 });
  const writes: AcceptedWrite[] = [];
  return {
    stack,
    api: client(server.url, stack.org.adminApiKey, agent, writes),
    async close() {
      await agent.close();
      await server.close();
      try {
        await assertWritesAudited(stack.databaseUrl, writes);
      } finally {
        await stack.close();
      }
    },
  };
}

/**
 * Every change the admin API accepted in this stack is in the audit log, found by its request's
 * referenceID: so each API test checks the audit log, and a new write route cannot go unrecorded. Read
 * over a connection of its own to the test's database (the stack's may go through a proxy a test cut).
 * An organization deleted since takes its audit log with it; its keys are gone too, which tells them apart.
 */
async function assertWritesAudited(databaseUrl: string, writes: AcceptedWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const ids = writes.map((w) => w.referenceId);
    const found = new Set(
      (
        await sql<
          { reference_id: string }[]
        >`select reference_id from audit_events where reference_id = any(${ids})`
      ).map((r) => r.reference_id),
    );
    const missing = writes.filter((w) => !found.has(w.referenceId));
    if (missing.length === 0) return;
    const hashes = missing.map((m) => m.tokenHash);
    const keys = new Set(
      (
        await sql<{ token_hash: string }[]>`select token_hash from api_keys where token_hash = any(${hashes})`
      ).map((r) => r.token_hash),
    );
    const unrecorded = missing.filter((m) => keys.has(m.tokenHash));
    if (unrecorded.length > 0) {
      throw new Error(
        `accepted changes missing from the audit log: ${unrecorded.map((m) => `${m.method} ${m.path} → ${m.status}`).join("; ")}`,
      );
    }
  } finally {
    await sql.end();
  }
}

/** A second organization in the same stack, with its own admin key. */
export async function secondOrganization(
  stack: Stack,
  slug: string,
): Promise<{ id: string; adminApiKey: string }> {
  return stack.rt.database.db.transaction((tx) => createOrganization(tx, slug));
}

/**
 * Asserts an error answer: the status, the contract's shape `{msg, code, referenceID}` and nothing else, the
 * code, and (when given) that the message names `field`.
 */
export function assertApiError(res: ApiResponse, status: number, code: string, field?: string): void {
  const where = `${res.status} ${res.text}`;
  if (res.status !== status) throw new Error(`expected status ${status}, got ${where}`);
  const body = res.json as Record<string, unknown> | undefined;
  if (!body || Object.keys(body).sort().join(",") !== "code,msg,referenceID") {
    throw new Error(`expected {msg, code, referenceID}, got ${where}`);
  }
  if (body.code !== code) throw new Error(`expected code ${code}, got ${where}`);
  if (typeof body.referenceID !== "string" || !/^[A-Z0-9]{6,16}$/.test(body.referenceID)) {
    throw new Error(`expected a short referenceID, got ${where}`);
  }
  if (field !== undefined && !String(body.msg).includes(field)) {
    throw new Error(`expected the message to name ${field}, got ${where}`);
  }
}
