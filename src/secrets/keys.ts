import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isUnavailable } from "../api/errors.ts";
import type { Config } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { generateSecretsKey, SecretBox, secretsKeyFromBase64 } from "./box.ts";
import { sealedKeyIds } from "./coverage.ts";

/** Postgres's "database does not exist": a database not made yet holds no sealed values. */
const NO_SUCH_DATABASE = "3D000";

/**
 * Creates the development key file when SECRETS_KEY is unset and the file does not exist yet, but only
 * while the database holds no sealed values: a new key could never open them, and a container that
 * lost its file (or started in another directory) would otherwise make every stored secret unreadable
 * with one restart. Then it stops with an error naming the key id the data needs. Does nothing when
 * SECRETS_KEY is set or the file exists.
 */
export async function ensureDevelopmentKey(config: Config, log: Logger): Promise<void> {
  if (config.secretsKey !== undefined || existsSync(config.secretsKeyFile)) return;
  const file = resolve(config.secretsKeyFile);
  const needed = await keyIdsStoredData(config, log);
  if (needed.length > 0) {
    throw new ConfigError(
      "SECRETS_KEY",
      `is not set and there is no key file at ${file}, but the database holds secrets sealed with key ${needed.join(", ")}: a new key could not open them, so none was made. Set SECRETS_KEY to the base64 key with that id (or SECRETS_KEY_FILE to the file that holds it)`,
    );
  }
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, `${generateSecretsKey()}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    // Another process of the same checkout (serve beside worker) made it meanwhile: use theirs.
    if ((err as { code?: string }).code === "EEXIST") return;
    throw err;
  }
  log.warn(
    { file },
    `SECRETS_KEY is not set: created a development key file at ${file}; production must set SECRETS_KEY (stored secrets open only with this key: keep the file)`,
  );
}

/**
 * The key ids the database's sealed values need; none when the database or its tables do not exist yet.
 * Waits for a Postgres that does not answer (a first start beside it), as `start` waits to migrate.
 */
async function keyIdsStoredData(config: Config, log: Logger): Promise<string[]> {
  for (let delay = 250, told = false; ; delay = Math.min(delay * 2, 5000)) {
    const { db, close } = openDatabase(config.databaseUrl, { max: 1 });
    try {
      return await sealedKeyIds(db, []);
    } catch (err) {
      if ((err as { code?: string }).code === NO_SUCH_DATABASE) return [];
      if (!isUnavailable(err)) throw err;
      if (!told) {
        told = true;
        log.warn(
          { err: (err as Error).message },
          "SECRETS_KEY is not set: waiting for Postgres, to check it holds no secrets sealed with another key before making a key file",
        );
      }
    } finally {
      await close();
    }
    await sleep(delay);
  }
}

/**
 * The box for stored secrets: SECRETS_KEY, or outside production the key file that
 * {@link ensureDevelopmentKey} made, and SECRETS_KEY_PREVIOUS. Never creates a key.
 */
export function loadSecretBox(config: Config): SecretBox {
  let current = config.secretsKey;
  if (current === undefined) {
    const file = resolve(config.secretsKeyFile);
    if (!existsSync(file))
      throw new ConfigError("SECRETS_KEY", `is not set and there is no key file at ${file}`);
    current = readFileSync(file, "utf8").trim();
  }
  const previous = config.secretsKeyPrevious ? [secretsKeyFromBase64(config.secretsKeyPrevious)] : [];
  return new SecretBox(secretsKeyFromBase64(current), previous);
}
