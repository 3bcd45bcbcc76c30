/**
 * An example receiver of Escalation Shield webhooks, on node:http and the package's receiver kit:
 * verify the signature on the raw body, answer 2xx at once, then process in the background after
 * deduplicating in Redis on the kit's `dedupeKey` (so a retry is recognised even after a restart). The key
 * is covered by the signature: `Idempotency-Key` is not, so a captured request replayed with another one
 * would pass a dedupe on it.
 *
 *   WEBHOOK_SECRET=whs_… npm run example:receiver
 *
 * Environment: WEBHOOK_SECRET (required; several, comma-separated, while a rotation's grace period runs),
 * WEBHOOK_PUBLIC_KEYS (optional base64 Ed25519 keys, comma-separated), REDIS_URL (default
 * redis://127.0.0.1:6379), HOST (default 127.0.0.1), PORT (default 4000; 0 picks a free one).
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { createRedisDeduper, verifyWebhook } from "escalation-shield/receiver";
import { Redis } from "ioredis";

const list = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
const secrets = list(process.env.WEBHOOK_SECRET);
const publicKeys = list(process.env.WEBHOOK_PUBLIC_KEYS);
if (secrets.length === 0 && publicKeys.length === 0) {
  process.stderr.write("set WEBHOOK_SECRET to the destination's signing secret (whs_…)\n");
  process.exit(2);
}

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const deduper = createRedisDeduper(redis, { prefix: "example-receiver:seen:" });

function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ msg, ...fields })}\n`);
}

/** The body as raw bytes: the signature covers exactly these, not a re-serialized parse. */
async function rawBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error("body too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Where the real work goes (open a ticket, page someone…). Runs after the sender has its 2xx. */
async function handle(event: string | undefined, key: string, body: Buffer): Promise<void> {
  if ((await deduper.check(key)) === "duplicate") {
    log("duplicate", { dedupe_key: key, event });
    return;
  }
  const payload = JSON.parse(body.toString("utf8")) as { record?: { id?: string } };
  log("processed", { dedupe_key: key, event, record: payload.record?.id ?? null });
}

const server = createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "POST" }).end();
    return;
  }
  rawBody(req).then(
    (body) => {
      const result = verifyWebhook({ body, headers: req.headers, secrets, publicKeys });
      if (!result.ok) {
        log("rejected", { reason: result.reason, detail: result.message });
        res
          .writeHead(401, { "content-type": "application/json" })
          .end(JSON.stringify({ error: result.reason }));
        return;
      }
      const key = result.dedupeKey;
      // Answer first: the sender's attempt ends after 5 s, and slow work must not turn into retries.
      res.writeHead(202, { "content-type": "application/json" }).end('{"received":true}');
      handle(result.event, key, body).catch((err: unknown) =>
        log("processing failed", { dedupe_key: key, error: String(err) }),
      );
    },
    () => {
      res.writeHead(413).end();
    },
  );
});

server.listen(Number(process.env.PORT ?? 4000), process.env.HOST ?? "127.0.0.1", () => {
  const { address, port } = server.address() as AddressInfo;
  log("listening", { url: `http://${address.includes(":") ? `[${address}]` : address}:${port}/` });
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.close(() => {
      redis.disconnect();
      process.exit(0);
    });
    server.closeAllConnections();
  });
}
