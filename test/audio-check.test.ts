/**
 * Ingestion's audio URL check is no window into the internal network for an ingestion-key holder: the
 * caller reads one of four generic reasons whatever the check met, DESTINATION_ALLOWLIST does not apply,
 * and a flood of URLs that never answer holds at most 64 sockets and answers within 15 s. Real HTTPS
 * servers, a DNS server on loopback (DNS_SERVERS) and the HTTP API.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type ApiStack, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { freePort } from "./helpers/redis.ts";
import { type Listener, startListener, startTestDns } from "./helpers/ssrf.ts";
import { waitFor } from "./helpers/wait.ts";

const FIELD = "records[0].audioRecording.audioURL";
const REASONS = {
  unreachable: `${FIELD}: not reachable: it must answer a GET with 2xx within 10 seconds`,
  notAllowed: `${FIELD}: not allowed: it must point at a public address`,
  notAudio: `${FIELD}: not audio: it must be served with an audio content type`,
  timedOut: "timed out: no answer in time",
};

const recording = (id: string, url: string) => ({
  id,
  fileID: "calls",
  type: "AUDIO_RECORDING",
  createdAt: Math.floor(Date.now() / 1000),
  audioRecording: { audioURL: url },
  metadata: {},
});

describe("audio URL checks", () => {
  const baseline = handleBaseline();
  let dns: Awaited<ReturnType<typeof startTestDns>>;
  let audio: Receiver;
  let trap: Listener;
  let s: ApiStack;
  let key: string;
  let open = 0;
  let arrived = 0;

  const ingest = (records: unknown[]) =>
    s.api.request("POST", "/webhook/custom/all", {
      raw: JSON.stringify({ records }),
      token: null,
      headers: { "content-type": "application/json", "api-key": key },
    });

  before(async () => {
    dns = await startTestDns({ "internal.test": ["10.1.2.3"] });
    trap = await startListener(["127.0.0.7"]);
    audio = await startReceiver({
      behaviour: (req, res) => {
        if (req.path.endsWith("hang.mp3")) {
          open++;
          arrived++;
          res.on("close", () => open--);
        } else if (req.path.endsWith("page.mp3"))
          res.writeHead(200, { "content-type": "text/html" }).end("<p>");
        else if (req.path.endsWith("500.mp3")) res.writeHead(500).end();
        else if (req.path.endsWith("404.mp3")) res.writeHead(404).end();
        else res.writeHead(200, { "content-type": "audio/mpeg" }).end(Buffer.alloc(64));
      },
    });
    s = await startApiStack({
      worker: false,
      env: {
        DNS_SERVERS: dns.server,
        // The destinations' allowlist names the trap; the audio check must not use it.
        DESTINATION_ALLOWLIST: "127.0.0.1,127.0.0.7,10.0.0.0/8",
        AUDIO_FETCH_ALLOWLIST: "127.0.0.1",
        LOG_LEVEL: "info",
      },
    });
    const res = await s.api.post("/api/integrations/feedback", { display_name: "CallCenter" });
    assert.equal(res.status, 201, res.text);
    key = res.json.api_key;
  });
  after(async () => {
    await s.close();
    await audio.close();
    await trap.close();
    await dns.close();
    await assertNoOpenHandles(baseline);
  });

  test("every kind of failure reads as one of four reasons; the detail is in the server log only", async () => {
    const base = audio.url.replace("/hook", "");
    const closed = await freePort();
    const cases: Array<{ url: string; message: string; leaks: string[] }> = [
      { url: `${base}/page.mp3`, message: REASONS.notAudio, leaks: ["text/html"] },
      { url: `${base}/500.mp3`, message: REASONS.unreachable, leaks: ["500"] },
      { url: `${base}/404.mp3`, message: REASONS.unreachable, leaks: ["404"] },
      {
        url: `https://127.0.0.1:${closed}/x.mp3`,
        message: REASONS.unreachable,
        leaks: ["ECONNREFUSED", `${closed}`],
      },
      { url: "https://internal.test/x.mp3", message: REASONS.unreachable, leaks: ["10.1.2.3", "private"] },
      { url: "https://missing.test/x.mp3", message: REASONS.unreachable, leaks: ["ENOTFOUND", "dns"] },
      {
        url: `https://127.0.0.7:${trap.port}/x.mp3`,
        message: REASONS.notAllowed,
        leaks: ["127.0.0.7", "loopback"],
      },
      { url: "https://10.1.2.3/x.mp3", message: REASONS.notAllowed, leaks: ["private"] },
    ];
    for (const c of cases) {
      const res = await ingest([recording("r-1", c.url)]);
      assert.equal(res.status, 400, `${c.url}: ${res.text}`);
      assert.equal(res.json.code, "ErrCodeInvalidFieldFormat");
      assert.equal(res.json.msg, c.message, c.url);
      for (const leak of c.leaks)
        assert.ok(!res.text.includes(leak), `${c.url} answer names ${leak}: ${res.text}`);
    }
    assert.equal(trap.connections, 0, "DESTINATION_ALLOWLIST let an audio check through");
    const ok = await ingest([recording("r-ok", `${base}/good.mp3`)]);
    assert.equal(ok.status, 200, ok.text);
    // What the check met is for the operator.
    const refusedLines = s.stack.logs.filter((l) => l.includes("audio URL refused"));
    assert.ok(refusedLines.some((l) => l.includes("10.1.2.3")));
    assert.ok(refusedLines.some((l) => l.includes("HTTP 500")));
  });

  test("ten requests of 100 URLs that never answer: at most 64 checks in flight, each answered within 15 s", async (t) => {
    const base = audio.url.replace("/hook", "");
    const batch = (n: number) =>
      Array.from({ length: 100 }, (_, i) => recording(`h-${n}-${i}`, `${base}/${n}-${i}/hang.mp3`));
    const started = performance.now();
    const pending = Promise.all(
      Array.from({ length: 10 }, async (_, n) => {
        const res = await ingest(batch(n));
        return { res, ms: performance.now() - started };
      }),
    );
    // No check can end before its 10 s, so until then every request that arrived is still open: the
    // number that arrived by 9 s is the number in flight, whatever the order sockets close in later.
    await new Promise((r) => setTimeout(r, 9000));
    const inFlight = arrived;
    const answers = await pending;
    for (const { res, ms } of answers) {
      assert.equal(res.status, 400, res.text);
      assert.match(res.text, new RegExp(REASONS.timedOut));
      assert.ok(ms < 17_000, `answered after ${Math.round(ms)} ms`);
    }
    t.diagnostic(
      `1,000 hanging audio URLs in 10 requests: ${inFlight} checks in flight at 9 s (cap 64); answers after ${answers
        .map((a) => Math.round(a.ms))
        .sort((a, b) => a - b)
        .join(", ")} ms`,
    );
    assert.ok(inFlight <= 64, `${inFlight} checks were in flight at once`);
    assert.ok(inFlight > 8, `only ${inFlight} in flight: the cap is process-wide, not per request`);
    await waitFor("every check's socket closed", () => open === 0, 5000);
  });
});
