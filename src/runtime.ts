import type { Redis } from "ioredis";
import { type EvaluationQueue, openEvaluationQueue } from "./automations/queue.ts";
import type { Config } from "./config.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { type DeliveryQueue, openDeliveryQueue } from "./delivery/queue.ts";
import { createLogger, type Logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createOutboundClient, type OutboundClient } from "./outbound/http.ts";
import { openRedis } from "./redis.ts";
import type { SecretBox } from "./secrets/box.ts";
import { loadSecretBox } from "./secrets/keys.ts";

/** The shared parts every process opens once: configuration, logger, pools and clients. */
export interface Runtime {
  config: Config;
  log: Logger;
  database: Database;
  box: SecretBox;
  http: OutboundClient;
  /** Producer connection: fails fast so request handlers can answer 503. */
  redis: Redis;
  deliveryQueue: DeliveryQueue;
  evaluationQueue: EvaluationQueue;
  /** This process's metrics: the API's `/metrics` (or the worker's metrics server) serves its registry. */
  metrics: Metrics;
  close(): Promise<void>;
}

export function openRuntime(config: Config, log: Logger = createLogger(config.logLevel)): Runtime {
  const box = loadSecretBox(config, log);
  const database = openDatabase(config.databaseUrl, { max: 20 });
  const http = createOutboundClient({
    allowlist: config.destinationAllowlist,
    dnsServers: config.dnsServers,
  });
  const redis = openRedis(config.redisUrl, "producer");
  redis.on("error", (err) => log.warn({ err: err.message }, "redis connection error"));
  const deliveryQueue = openDeliveryQueue(redis, config.queuePrefix);
  const evaluationQueue = openEvaluationQueue(redis, config.queuePrefix);
  const metrics = createMetrics({
    db: database.db,
    redis,
    queues: [deliveryQueue, evaluationQueue],
    prefix: config.queuePrefix,
    log,
  });
  return {
    config,
    log,
    database,
    box,
    http,
    redis,
    deliveryQueue,
    evaluationQueue,
    metrics,
    async close() {
      await deliveryQueue.close();
      await evaluationQueue.close();
      await http.close();
      redis.disconnect();
      await database.close();
    },
  };
}
