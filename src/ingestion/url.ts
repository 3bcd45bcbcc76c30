import { invalid, kindOf, quote, type RecordContext } from "./issues.ts";
import { MAX_URL_LENGTH } from "./types.ts";

/** Seed 000's supported audio formats. */
export const AUDIO_EXTENSIONS = ["mp3", "mp4", "wav", "flac", "ogg", "amr", "webm", "m4a"] as const;

/**
 * Parses an absolute http(s) URL and returns its normalized form, or undefined after reporting.
 * Credentials in the URL are refused: the link is shown to admins and sent on in alerts, and seed 000
 * says audio must be reachable without authentication.
 */
export function readHttpUrl(ctx: RecordContext, value: unknown, path: string, name: string): URL | undefined {
  if (typeof value !== "string") {
    invalid(ctx, path, `${name} must be a string URL (got ${kindOf(value)})`);
    return undefined;
  }
  if (value.length > MAX_URL_LENGTH) {
    invalid(ctx, path, `${name} must be at most ${MAX_URL_LENGTH} characters`);
    return undefined;
  }
  const url = URL.parse(value.trim());
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    invalid(ctx, path, `${name} must be an absolute http or https URL (got ${quote(value)})`);
    return undefined;
  }
  if (url.username !== "" || url.password !== "") {
    invalid(ctx, path, `${name} must not contain a user name or password`);
    return undefined;
  }
  return url;
}

/** The audio URL: http(s), and its path (query string ignored, so pre-signed URLs pass) names a supported format. */
export function readAudioUrl(ctx: RecordContext, value: unknown, path: string): string | undefined {
  const url = readHttpUrl(ctx, value, path, "audioURL");
  if (url === undefined) return undefined;
  const lastSegment = url.pathname.slice(url.pathname.lastIndexOf("/") + 1).toLowerCase();
  const dot = lastSegment.lastIndexOf(".");
  const extension = dot < 0 ? "" : lastSegment.slice(dot + 1);
  if (!(AUDIO_EXTENSIONS as readonly string[]).includes(extension)) {
    invalid(
      ctx,
      path,
      `audioURL path must end with a supported audio extension (${AUDIO_EXTENSIONS.join(", ")}); got ${quote(lastSegment)}`,
    );
    return undefined;
  }
  return url.href;
}
