import { isIP } from "node:net";
import { OutboundError } from "../errors.ts";
import { type AddressPolicy, outboundUrl } from "../outbound/guard.ts";
import { createOutboundClient, type OutboundClient } from "../outbound/http.ts";

/** Seed 000: the audio URL must answer 2xx within 10 seconds. */
export const AUDIO_CHECK_TIMEOUT_MS = 10_000;
/** One ingestion request's audio checks all end by then, in milliseconds, answered or not. */
export const AUDIO_REQUEST_DEADLINE_MS = 15_000;
/** Checks in flight in one process, over every request: each holds a socket while the host is slow. */
export const AUDIO_CHECKS_IN_FLIGHT = 64;
/** Checks of one request in flight at once, so one batch of 100 recordings cannot take every slot. */
const PER_REQUEST = 8;

/**
 * What the caller is told, and nothing more: an ingestion key is the least trusted credential (it is
 * handed to feedback sources), so a reason must not tell an internal name from a missing one, a refused
 * port from an open one, or one status from another. `not allowed` is said only of what the URL itself
 * shows (a literal non-public address; ingestion refuses other schemes and credentials before); a name that resolves to a non-public
 * address reads `not reachable`, as a name that does not resolve does.
 */
export type AudioReason = "not reachable" | "not allowed" | "not audio" | "timed out";

const EXPLAINED: Record<AudioReason, string> = {
  "not reachable": "not reachable: it must answer a GET with 2xx within 10 seconds",
  "not allowed": "not allowed: it must point at a public address",
  "not audio": "not audio: it must be served with an audio content type",
  "timed out": "timed out: no answer in time",
};

/** A refused audio URL: the reason for the caller, the detail for the server log only. */
export interface AudioRefusal {
  reason: AudioReason;
  /** The caller's message: the reason and what the URL must do. */
  message: string;
  detail: string;
}

/**
 * Content types a recording may be served with. mp4 and webm files are often labelled as video; the guide
 * names text/html, JSON, XML and plain text as refused, and anything else that is not audio is refused too.
 */
const AUDIO_TYPES = /^(audio\/[\w.+-]+|video\/mp4|video\/webm|application\/ogg)$/i;

function refused(reason: AudioReason, detail: string): AudioRefusal {
  return { reason, message: EXPLAINED[reason], detail };
}

/**
 * Checks ingested audio URLs the way seed 000 asks (a GET that answers 2xx within 10 s with an audio
 * content type), under a policy of its own: the guarded outbound client with AUDIO_FETCH_ALLOWLIST (empty
 * by default; DESTINATION_ALLOWLIST does not apply), at most {@link AUDIO_CHECKS_IN_FLIGHT} checks in
 * flight in the process and every request's checks over within {@link AUDIO_REQUEST_DEADLINE_MS}.
 */
export class AudioChecker {
  private readonly http: OutboundClient;
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly limits: { inFlight: number; deadlineMs: number };

  /** `limits` default to {@link AUDIO_CHECKS_IN_FLIGHT} and {@link AUDIO_REQUEST_DEADLINE_MS}. */
  constructor(
    policy: AddressPolicy,
    limits = { inFlight: AUDIO_CHECKS_IN_FLIGHT, deadlineMs: AUDIO_REQUEST_DEADLINE_MS },
  ) {
    this.limits = limits;
    this.http = createOutboundClient(policy, { timeoutMs: AUDIO_CHECK_TIMEOUT_MS });
  }

  /** One entry per URL, in order: why it is refused, or `undefined` when it passes. */
  async check(urls: string[]): Promise<Array<AudioRefusal | undefined>> {
    const deadline = performance.now() + this.limits.deadlineMs;
    const results: Array<AudioRefusal | undefined> = new Array(urls.length);
    let next = 0;
    const lane = async () => {
      while (next < urls.length) {
        const i = next++;
        results[i] = await this.checkOne(urls[i] as string, deadline);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PER_REQUEST, urls.length) }, lane));
    return results;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  private async checkOne(url: string, deadline: number): Promise<AudioRefusal | undefined> {
    if (!(await this.acquire(deadline))) return refused("timed out", "no check slot before the deadline");
    try {
      const left = Math.min(AUDIO_CHECK_TIMEOUT_MS, deadline - performance.now());
      if (left <= 0) return refused("timed out", "the request's deadline passed");
      return await this.fetch(url, left);
    } finally {
      this.release();
    }
  }

  private async fetch(url: string, timeoutMs: number): Promise<AudioRefusal | undefined> {
    try {
      const res = await this.http.send({
        method: "GET",
        url,
        headers: { accept: "audio/*", "user-agent": "SupportEscalationAutomation/1.0" },
        timeoutMs,
        maxBodyBytes: 0,
        headersOnly: true,
      });
      if (res.status < 200 || res.status > 299)
        return refused("not reachable", `answered HTTP ${res.status}`);
      const type = String(res.headers["content-type"] ?? "")
        .split(";")[0]
        ?.trim();
      if (!type || !AUDIO_TYPES.test(type)) return refused("not audio", `served as "${type}"`);
      return undefined;
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      const detail = `${err.kind}: ${err.message}`;
      if (err.kind === "timeout") return refused("timed out", detail);
      if (err.kind === "blocked" && refusedByItsForm(url)) return refused("not allowed", detail);
      return refused("not reachable", detail);
    }
  }

  /** Waits for a slot until `deadline`; false when none came in time. */
  private acquire(deadline: number): Promise<boolean> {
    if (this.inFlight < this.limits.inFlight) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const granted = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          this.waiting.splice(this.waiting.indexOf(granted), 1);
          resolve(false);
        },
        Math.max(0, deadline - performance.now()),
      );
      this.waiting.push(granted);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter, so inFlight stays as it is.
    if (next) next();
    else this.inFlight--;
  }
}

/** True when the URL alone is refused (not http(s), credentials, a literal non-public address). */
function refusedByItsForm(url: string): boolean {
  try {
    return isIP(outboundUrl(url).hostname.replace(/^\[|\]$/g, "")) !== 0;
  } catch {
    return true;
  }
}
