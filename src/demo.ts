import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generate } from "selfsigned";
import type { SlackMessage } from "./channels/slack-message.ts";
import type { Config } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { emailLines, slackLines, startDemoSmtp } from "./demo-channels.ts";
import { recordId } from "./ingestion/store.ts";
import { createOrganization } from "./orgs.ts";

const CLI = fileURLToPath(new URL("../bin/escalation-shield.js", import.meta.url));

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A CA and a certificate for 127.0.0.1 made for this run, so the demo needs nothing set up. */
async function demoCertificates(): Promise<{ ca: string; cert: string; key: string }> {
  const notAfterDate = new Date(Date.now() + 86400_000);
  const ca = await generate([{ name: "commonName", value: "Escalation Shield demo CA" }], {
    keyType: "ec",
    algorithm: "sha256",
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: "commonName", value: "127.0.0.1" }], {
    keyType: "ec",
    algorithm: "sha256",
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] },
    ],
  });
  return { ca: ca.cert, cert: leaf.cert, key: leaf.private };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as AddressInfo;
  srv.close();
  return port;
}

async function api<T>(base: string, key: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const now = () => Math.floor(Date.now() / 1000) - 60;

/** The sample feedback: some should escalate, some should not. */
function sampleRecords(): unknown[] {
  return [
    {
      id: "review-1001",
      fileID: "app-store",
      type: "REVIEW",
      createdAt: now(),
      sourceURL: "https://reviews.example.com/r/1001",
      text: "Third time I'm writing. You charged me twice and nobody answers. Refund me this week or I file a chargeback and report you to the consumer protection agency.",
      metadata: { plan: { array: { s: ["Enterprise"] } } },
    },
    {
      id: "review-1002",
      fileID: "app-store",
      type: "REVIEW",
      createdAt: now(),
      text: "This app is insanely good. The new dashboard is a killer feature, love it!",
      metadata: { plan: { array: { s: ["Free"] } } },
    },
    {
      id: "chat-2001",
      fileID: "support-chat",
      type: "CONVERSATION",
      createdAt: now(),
      conversation: {
        msgs: [
          { actor: "user", text: "Hi, my export has been stuck since yesterday." },
          { actor: "agent", text: "Sorry about that! Let me check." },
          { actor: "user", text: "It's still stuck and our board meeting is tomorrow." },
          { actor: "agent", text: "Engineering is looking into it." },
          {
            actor: "user",
            text: "This is unacceptable. I want to speak to a manager now, otherwise we are cancelling our contract and moving to your competitor.",
          },
        ],
      },
      metadata: { plan: { array: { s: ["Enterprise"] } } },
    },
    {
      id: "survey-3001",
      fileID: "nps",
      type: "SURVEY",
      createdAt: now(),
      surveyResponse: {
        responses: [
          { question: "How likely are you to recommend us?", answer: ["8"] },
          { question: "What could we improve?", answer: "Dark mode would be nice." },
        ],
      },
      metadata: { metadata: { nps_score: { array: { n: [8] } } } },
    },
    {
      id: "forum-4001",
      fileID: "community",
      type: "FORUM_CONVERSATION_THREAD",
      createdAt: now(),
      conversation: {
        msgs: [
          { actor: "user", text: "Has anyone tried the new API v2? I'm seeing intermittent timeouts." },
          { actor: "user", text: "Switching to the batch endpoint fixed it for me." },
        ],
      },
      metadata: { source_platform: { s: ["community_forum"] } },
    },
  ];
}

/**
 * `escalation-shield demo`: a self-contained run on this machine. It migrates, creates a demo organization,
 * starts a local HTTPS receiver with a certificate made for the run, starts the product (`start`) in a child
 * process that trusts that certificate through NODE_EXTRA_CA_CERTS, configures a destination with Bearer
 * auth and an automation through the admin API, ingests sample feedback through the ingestion webhook, and
 * prints what the receiver got and why the other records did not fire, then the console's address and a key
 * to sign in with. With `keep`, everything stays up for the console until SIGINT or SIGTERM.
 */
export async function runDemo(
  config: Config,
  childEnv: Record<string, string | undefined>,
  out: (line: string) => void,
  options: { keep?: boolean } = {},
): Promise<void> {
  await migrateDatabase(config.databaseUrl);
  const slug = `demo-${Date.now().toString(36)}`;
  const { db, close } = openDatabase(config.databaseUrl, { max: 1 });
  const org = await db.transaction((tx) => createOrganization(tx, slug)).finally(() => close());
  out(`organization ${org.slug} (${org.id})`);

  const certs = await demoCertificates();
  const dir = mkdtempSync(join(tmpdir(), "escalation-shield-demo-"));
  const caFile = join(dir, "ca.pem");
  writeFileSync(caFile, certs.ca);

  const received: Received[] = [];
  const slackPosts: SlackMessage[] = [];
  const receiver = createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      // The same server stands in for Slack's incoming webhook under /slack/, answering as Slack does.
      if (req.url?.startsWith("/slack/")) {
        res.writeHead(200, { "content-type": "text/html" }).end("ok");
        slackPosts.push(JSON.parse(body) as SlackMessage);
        return;
      }
      // Acknowledge at once; a real receiver processes afterwards.
      res.writeHead(200).end();
      received.push({ headers: req.headers, body });
    });
  });
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  const receiverUrl = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`;
  out(`receiver listening at ${receiverUrl}`);
  const slackUrl = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/slack/services/TDEMO/BDEMO/demo-token`;
  const smtp = await startDemoSmtp(certs);
  out(`SMTP server listening at ${smtp.url} (STARTTLS)`);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(process.execPath, [CLI, "start"], {
    stdio: ["ignore", "ignore", "inherit"],
    env: {
      ...childEnv,
      HOST: "127.0.0.1",
      PORT: String(port),
      PUBLIC_URL: base,
      NODE_EXTRA_CA_CERTS: caFile,
      DESTINATION_ALLOWLIST: "127.0.0.1",
      LOG_LEVEL: "warn",
      SMTP_URL: smtp.url,
      SMTP_FROM: "Escalation Shield demo <alerts@demo.example>",
    },
  });
  try {
    await waitUntil(
      "the API",
      async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.ok === true,
      30_000,
    );
    const key = org.adminApiKey;
    const integration = await api<{ id: string; api_key: string }>(
      base,
      key,
      "POST",
      "/api/integrations/feedback",
      {
        display_name: "DemoSupport",
      },
    );
    const credential = "demo-receiver-token";
    const destination = await api<{ id: string }>(base, key, "POST", "/api/integrations/webhooks", {
      url: receiverUrl,
      events: ["escalation.alert"],
      enabled: true,
      auth: { type: "bearer", credential },
    });
    const slack = await api<{ id: string }>(base, key, "POST", "/api/integrations/slack", {
      name: "#support-escalations",
      webhook_url: slackUrl,
      events: ["escalation.alert"],
    });
    const email = await api<{ id: string }>(base, key, "POST", "/api/integrations/email", {
      name: "on-call",
      to: ["oncall@example.com"],
      events: ["escalation.alert"],
    });
    await api(base, key, "POST", "/api/automations", {
      name: "High-risk feedback",
      active: true,
      filter: {},
      trigger: { min_escalation_level: "high" },
      destination_ids: [destination.id, slack.id, email.id],
    });
    const records = sampleRecords();
    const ingest = await fetch(`${base}/webhook/custom/all`, {
      method: "POST",
      headers: { "api-key": integration.api_key, "content-type": "application/json" },
      body: JSON.stringify({ records }),
    });
    out(`ingested ${records.length} records: ${ingest.status} ${await ingest.text()}`);

    type Why = {
      analysis: { escalation_level: string } | null;
      automations: { fired: boolean; reason: string }[];
    };
    const ids = (records as { id: string }[]).map((r) => ({
      external: r.id,
      id: recordId(integration.id, r.id),
    }));
    const views = new Map<string, Why>();
    await waitUntil(
      "every record to be evaluated",
      async () => {
        for (const r of ids) views.set(r.external, await api<Why>(base, key, "GET", `/api/records/${r.id}`));
        return [...views.values()].every((v) => v.analysis !== null);
      },
      30_000,
    );
    const expected = [...views.values()].filter((v) => v.automations.some((a) => a.fired)).length;
    await waitUntil(
      "the alerts to arrive",
      () => received.length >= expected && slackPosts.length >= expected && smtp.messages.length >= expected,
      30_000,
    );

    out("");
    out(`the receiver got ${received.length} alert(s):`);
    for (const r of received) {
      out("");
      for (const h of [
        "content-type",
        "user-agent",
        "idempotency-key",
        "authorization",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "webhook-event",
      ]) {
        const v = r.headers[h];
        if (v !== undefined)
          out(`  ${h}: ${h === "authorization" ? String(v).replace(credential, "[credential]") : v}`);
      }
      out(`  ${r.body}`);
    }
    out("");
    out(`the Slack stand-in got ${slackPosts.length} message(s), as Slack would show them:`);
    for (const m of slackPosts) {
      out("");
      for (const line of slackLines(m)) out(line);
    }
    out("");
    out(`the SMTP server got ${smtp.messages.length} email(s):`);
    for (const m of smtp.messages) {
      out("");
      for (const line of emailLines(m)) out(line);
    }
    out("");
    out("records that did not fire:");
    for (const [external, view] of views) {
      const why = view.automations.find((a) => !a.fired);
      if (why) out(`  ${external}: escalation ${view.analysis?.escalation_level ?? "?"}; ${why.reason}`);
    }
    out("");
    out(`the console: ${base}/console (sign in with the demo's admin key ${key})`);
    if (options.keep) {
      out("everything stays up for the console; Ctrl-C stops it");
      await Promise.race([once(process, "SIGINT"), once(process, "SIGTERM")]);
    } else {
      out("the demo stops now; `npx escalation-shield demo --keep` leaves it running to browse the console");
    }
  } finally {
    child.kill("SIGTERM");
    if (child.exitCode === null) await once(child, "exit");
    receiver.closeAllConnections();
    receiver.close();
    await smtp.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
