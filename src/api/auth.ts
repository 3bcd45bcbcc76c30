import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import type { Executor } from "../db/client.ts";
import type { KeyScope } from "../db/schema.ts";
import { adminKeyHash, findActiveAdminKey } from "../orgs.ts";
import type { AuthFailures } from "./auth-failures.ts";
import { ApiError } from "./errors.ts";

/** Who an admin request acts for: every query it makes is scoped to `orgId`. */
export interface AdminContext {
  keyId: string;
  /** `read-only` keys may only read: every other method is refused with 403. */
  scope: KeyScope;
  orgId: string;
  orgSlug: string;
  /** SHA-256 hex of the token: the rate-limit key, never the token itself. */
  tokenHash: string;
}

declare module "fastify" {
  interface FastifyRequest {
    admin: AdminContext | null;
  }
}

/** Tokens are `esk_` + base64url today; anything longer than this is refused before hashing. */
const MAX_TOKEN_LENGTH = 256;
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

export class UnauthorizedError extends ApiError {
  override name = "UnauthorizedError";
  constructor(msg: string) {
    super(401, "ErrCodeUnauthorized", msg);
  }
}

/**
 * Resolves `Authorization: Bearer <admin API key>` to its organization. The key is looked up by the SHA-256
 * of the token and its stored hash compared again in constant time; revoked keys are refused at once (no cache).
 * Throws {@link UnauthorizedError}.
 */
export async function authenticate(db: Executor, authorization: string | undefined): Promise<AdminContext> {
  if (authorization === undefined || authorization === "") {
    throw new UnauthorizedError("headers.authorization: required (Bearer <admin API key>)");
  }
  const token = BEARER.exec(authorization)?.[1];
  if (token === undefined || token.length > MAX_TOKEN_LENGTH) {
    throw new UnauthorizedError("headers.authorization: must be Bearer <admin API key>");
  }
  const hash = adminKeyHash(token);
  const key = await findActiveAdminKey(db, hash);
  if (!key || !timingSafeEqual(Buffer.from(key.tokenHash, "hex"), Buffer.from(hash, "hex"))) {
    throw new UnauthorizedError("invalid or revoked admin API key");
  }
  return {
    keyId: key.keyId,
    scope: key.scope,
    orgId: key.orgId,
    orgSlug: key.orgSlug,
    tokenHash: key.tokenHash,
  };
}

/** Methods that change nothing; every other one is a write only an `admin` key may make. */
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * An `onRequest` hook that authenticates every route of the scope it is added to; an address with too many
 * failed authentications is refused before its key is hashed (see {@link AuthFailures}).
 */
export function adminAuthHook(db: Executor, failures: AuthFailures) {
  return async (request: FastifyRequest): Promise<void> => {
    request.admin = await failures.guard(request, () => authenticate(db, request.headers.authorization));
  };
}

/**
 * A hook that refuses (403 `ErrCodeForbidden`) every method but GET, HEAD and OPTIONS to a key that is not
 * `admin`: by method, so a new write route is covered without being listed, and by the one scope that may
 * write, so an unknown scope writes nothing. Added after the rate limits, so refused writes count too.
 */
export async function writeScopeHook(request: FastifyRequest): Promise<void> {
  const admin = adminOf(request);
  if (admin.scope !== "admin" && !READ_METHODS.has(request.method)) {
    throw new ApiError(
      403,
      "ErrCodeForbidden",
      `headers.authorization: this key is ${admin.scope}; ${request.method} changes configuration and needs an admin key`,
    );
  }
}

/** The caller's organization; only inside routes behind {@link adminAuthHook}. */
export function adminOf(request: FastifyRequest): AdminContext {
  if (!request.admin) throw new UnauthorizedError("not authenticated");
  return request.admin;
}
