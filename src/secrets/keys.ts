import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { generateSecretsKey, SecretBox, secretsKeyFromBase64 } from "./box.ts";

/**
 * The box for stored secrets. With SECRETS_KEY unset (never in production: config refuses it) a key is
 * created once in `config.secretsKeyFile` so a development checkout keeps working across restarts.
 */
export function loadSecretBox(config: Config, log?: Logger): SecretBox {
  let current = config.secretsKey;
  if (current === undefined) {
    const file = config.secretsKeyFile;
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${generateSecretsKey()}\n`, { mode: 0o600, flag: "wx" });
      log?.warn({ file }, "SECRETS_KEY is not set: created a local key file; set SECRETS_KEY in production");
    }
    current = readFileSync(file, "utf8").trim();
  }
  const previous = config.secretsKeyPrevious ? [secretsKeyFromBase64(config.secretsKeyPrevious)] : [];
  return new SecretBox(secretsKeyFromBase64(current), previous);
}
