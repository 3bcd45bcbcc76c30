import { OutboundError } from "../errors.ts";
import type { OutboundClient } from "../outbound/http.ts";

/** Seed 000: the audio URL must answer 2xx within 10 seconds. */
export const AUDIO_CHECK_TIMEOUT_MS = 10_000;

/**
 * Content types a recording may be served with. mp4 and webm files are often labelled as video; the guide
 * names text/html, JSON, XML and plain text as refused, and anything else that is not audio is refused too.
 */
const AUDIO_TYPES = /^(audio\/[\w.+-]+|video\/mp4|video\/webm|application\/ogg)$/i;

/**
 * Fetches an audio URL the way ingestion must (seed 000): through the product's guarded outbound client
 * (private addresses refused, no redirects), 2xx within 10 s, an audio content type. Returns why it is
 * refused, or `undefined` when it passes. Only the headers matter, so the body is not kept.
 */
export async function audioUrlProblem(http: OutboundClient, url: string): Promise<string | undefined> {
  try {
    const res = await http.send({
      method: "GET",
      url,
      headers: { accept: "audio/*", "user-agent": "SupportEscalationAutomation/1.0" },
      timeoutMs: AUDIO_CHECK_TIMEOUT_MS,
      maxBodyBytes: 0,
      headersOnly: true,
    });
    if (res.status < 200 || res.status > 299) return `answered HTTP ${res.status}; it must answer 2xx`;
    const type = String(res.headers["content-type"] ?? "")
      .split(";")[0]
      ?.trim();
    if (!type || !AUDIO_TYPES.test(type)) {
      return `is served as ${type ? `"${type}"` : "no content type"}; it must be an audio content type`;
    }
    return undefined;
  } catch (err) {
    if (err instanceof OutboundError) {
      return err.kind === "timeout"
        ? "did not answer within 10 seconds"
        : `could not be fetched (${err.kind}: ${err.message})`;
    }
    throw err;
  }
}
