/**
 * The receiver kit: what a service receiving Escalation Shield webhooks needs, on node:crypto alone.
 * `import { verifyWebhook, createRedisDeduper } from "escalation-shield/receiver"`.
 */
export {
  createPostgresDeduper,
  createRedisDeduper,
  type Deduper,
  type RedisLike,
  type SqlLike,
} from "./dedupe.ts";
export {
  type HeadersLike,
  type SignatureScheme,
  type VerifyFailure,
  type VerifyOptions,
  type VerifyResult,
  verifyWebhook,
} from "./verify.ts";
