import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { type Config, loadConfig } from "../../src/config.ts";
import { generateSecretsKey } from "../../src/secrets/box.ts";

const PG = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
const TEMPLATE = process.env.TEST_TEMPLATE_DB ?? "es_test_template";
const DB_PREFIX = process.env.TEST_DB_PREFIX ?? "es_t_0";
const CA_DIR = process.env.TEST_CA_DIR ?? ".test-ca";

/** Certificates made by test/run.ts: a CA the product trusts and a server certificate for 127.0.0.1. */
export function testTls(): { ca: string; cert: string; key: string } {
  return {
    ca: readFileSync(join(CA_DIR, "ca.pem"), "utf8"),
    cert: readFileSync(join(CA_DIR, "server.pem"), "utf8"),
    key: readFileSync(join(CA_DIR, "server.key"), "utf8"),
  };
}

export function caFile(): string {
  return join(CA_DIR, "ca.pem");
}

/** A database of this test's own, copied from the migrated template; `drop()` removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${DB_PREFIX}_${randomBytes(6).toString("hex")}`;
  const admin = postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name} template ${TEMPLATE}`);
  } finally {
    await admin.end();
  }
  return {
    url: `${PG}/${name}`,
    async drop() {
      const a = postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * The environment of a test's product processes: its own database and queue prefix, a fresh secrets key,
 * loopback allowed as a destination, and a short retry schedule unless `overrides` say otherwise.
 */
export function testEnv(databaseUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: "test",
    DATABASE_URL: databaseUrl,
    REDIS_URL: "redis://127.0.0.1:6379",
    QUEUE_PREFIX: `es_t_${randomBytes(4).toString("hex")}`,
    SECRETS_KEY: generateSecretsKey(),
    DESTINATION_ALLOWLIST: "127.0.0.1,::1",
    DELIVERY_RETRY_SCHEDULE: "1,1,1",
    SWEEP_INTERVAL_MS: "1000",
    BREAKER_COOLDOWN_MS: "1000",
    // Breakers stay closed unless a test is about them: failing receivers are the point of many tests.
    BREAKER_FAILURE_THRESHOLD: "1000",
    LOG_LEVEL: "warn",
    ...overrides,
  };
}

export function testConfig(env: Record<string, string>): Config {
  return loadConfig(env);
}
