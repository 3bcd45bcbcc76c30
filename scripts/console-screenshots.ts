/**
 * `npm run docs:screenshots`: runs `escalation-shield demo --keep` against a database and queue prefix of
 * its own, signs in to its console in headless Chromium (the console tests' browser setup) and writes a
 * screenshot of each page to docs/console/, at a laptop's width and, for two pages, a phone's.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { Redis } from "ioredis";
import postgres from "postgres";
import { loadConfig } from "../src/config.ts";
import { generateSecretsKey } from "../src/secrets/box.ts";
import { startBrowser } from "../test/helpers/browser.ts";

const OUT = resolve("docs/console");
const config = loadConfig();
const name = `es_screens_${randomBytes(4).toString("hex")}`;
const server = new URL(config.databaseUrl);
const adminUrl = new URL(server);
adminUrl.pathname = "/postgres";
const admin = postgres(adminUrl.toString(), { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const databaseUrl = new URL(server);
databaseUrl.pathname = `/${name}`;

const demo = spawn(process.execPath, [resolve("bin/escalation-shield.js"), "demo", "--keep"], {
  env: {
    ...process.env,
    DATABASE_URL: databaseUrl.toString(),
    QUEUE_PREFIX: name,
    SECRETS_KEY: generateSecretsKey(),
    LOG_LEVEL: "warn",
  },
  stdio: ["ignore", "pipe", "inherit"],
});
const chrome = await startBrowser();
try {
  const [url, key] = await new Promise<[string, string]>((done, fail) => {
    let out = "";
    demo.stdout?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
      const m = /the console: (\S+) \(sign in with the demo's admin key (\S+)\)/.exec(out);
      if (m) done([m[1] as string, m[2] as string]);
    });
    demo.once("exit", (code) =>
      fail(new Error(`the demo exited (${code}) before printing the console's address`)),
    );
  });
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(new URL(path, url), { headers: { authorization: `Bearer ${key}` } });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  type List<T> = { data: T[] };
  const webhook = (await api<List<{ id: string }>>("/api/integrations/webhooks")).data[0]?.id;
  const automation = (await api<List<{ id: string }>>("/api/automations")).data[0]?.id;
  const deliveries = await api<List<{ id: string }>>(`/api/integrations/webhooks/${webhook}/deliveries`);
  const delivery = deliveries.data[0]?.id;
  const detail = await api<{ payload: { record?: { id: string } } }>(
    `/api/integrations/webhooks/${webhook}/deliveries/${delivery}`,
  );
  const record = detail.payload.record?.id;

  mkdirSync(OUT, { recursive: true });
  // Each page with what shows it has loaded (a same-document navigation has no load event to wait for).
  const shots: Array<[file: string, route: string, ready: string]> = [
    ["overview", "overview", ".chart canvas"],
    ["destinations", "destinations", "table"],
    ["destination", `destinations/webhook/${webhook}`, "#h-settings"],
    ["new-webhook", "destinations/new/webhook", "form"],
    ["deliveries", `destinations/webhook/${webhook}/deliveries`, "[data-testid=total]"],
    ["delivery", `destinations/webhook/${webhook}/deliveries/${delivery}`, "[data-testid=request-headers]"],
    ["automations", "automations", "[data-testid=last-fired]"],
    ["automation", `automations/${automation}`, "form fieldset"],
    ["feedback", "feedback", "table"],
    ["record", `records/${record}`, "[data-testid=analysis]"],
    ["keys", "keys", "table"],
    ["audit-log", "audit-log", "[data-testid=audit-event]"],
    ["validator", "validator", "#payload"],
  ];
  for (const viewport of [
    { suffix: "", width: 1280, height: 800, only: undefined },
    { suffix: "-phone", width: 390, height: 844, only: ["overview", "deliveries"] },
  ]) {
    const page = await chrome.page();
    await page.setViewportSize({ width: viewport.width, height: viewport.height });
    await page.goto(`${url}`);
    if (!viewport.suffix) await page.screenshot({ path: `${OUT}/sign-in.png` });
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    for (const [file, route, ready] of shots) {
      if (viewport.only && !viewport.only.includes(file)) continue;
      await page.goto(`${url}#/${route}`);
      await page.locator(ready).first().waitFor();
      await page.getByText("Loading…").waitFor({ state: "detached" });
      await page.screenshot({ path: `${OUT}/${file}${viewport.suffix}.png`, fullPage: true });
      process.stdout.write(`docs/console/${file}${viewport.suffix}.png\n`);
    }
  }
} finally {
  await chrome.close();
  demo.kill("SIGTERM");
  if (demo.exitCode === null) await once(demo, "exit");
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  const redis = new Redis(config.redisUrl);
  for (let cursor = "0"; ; ) {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${name}:*`, "COUNT", 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
    if (cursor === "0") break;
  }
  redis.disconnect();
}
