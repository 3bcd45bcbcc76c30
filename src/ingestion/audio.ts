import { indexPath, invalid, kindOf, missing, type RecordContext } from "./issues.ts";
import {
  isAbsent,
  isBlank,
  isPlainObject,
  optionalString,
  prop,
  requiredArray,
  requiredObject,
  requiredString,
  requiredText,
} from "./read.ts";
import type { RecordContent, TranscriptUnit } from "./types.ts";
import { readAudioUrl } from "./url.ts";

/**
 * An AUDIO_RECORDING's `audioRecording`: the audio URL and an optional transcript. A transcript whose
 * units are all empty is treated as none, so the recording is transcribed instead. Returns undefined
 * after reporting.
 */
export function readAudio(
  ctx: RecordContext,
  record: Record<string, unknown>,
  base: string,
): RecordContent | undefined {
  const audioPath = `${base}.audioRecording`;
  const audio = requiredObject(ctx, prop(record, "audioRecording"), audioPath, "audioRecording");
  if (audio === undefined) return undefined;
  const urlPath = `${audioPath}.audioURL`;
  const rawUrl = prop(audio, "audioURL");
  if (isAbsent(rawUrl)) missing(ctx, urlPath, "audioURL is required");
  const audioUrl = isAbsent(rawUrl) ? undefined : readAudioUrl(ctx, rawUrl, urlPath);
  const transcript = readTranscript(ctx, prop(audio, "transcript"), `${audioPath}.transcript`);
  if (audioUrl === undefined || transcript === undefined) return undefined;
  return { kind: "audio", audioUrl, transcript };
}

function readTranscript(
  ctx: RecordContext,
  value: unknown,
  path: string,
): TranscriptUnit[] | null | undefined {
  if (isAbsent(value)) return null;
  if (!isPlainObject(value)) {
    invalid(ctx, path, `transcript must be an object (got ${kindOf(value)})`);
    return undefined;
  }
  const conversationPath = `${path}.conversation`;
  const conversation = requiredObject(
    ctx,
    prop(value, "conversation"),
    conversationPath,
    "transcript.conversation",
  );
  if (conversation === undefined) return undefined;
  const unitsPath = `${conversationPath}.units`;
  const raw = requiredArray(ctx, prop(conversation, "units"), unitsPath, "transcript.conversation.units");
  if (raw === undefined) return undefined;
  const before = ctx.issues.length;
  const units: TranscriptUnit[] = [];
  for (let i = 0; i < raw.length; i++) {
    const unit = readUnit(ctx, raw[i], indexPath(unitsPath, i));
    if (unit) units.push(unit);
  }
  if (ctx.issues.length > before) return undefined;
  return units.length > 0 ? units : null;
}

/** One transcript unit: kept, null when its text is blank, undefined after reporting. */
function readUnit(ctx: RecordContext, raw: unknown, path: string): TranscriptUnit | null | undefined {
  if (!isPlainObject(raw)) {
    invalid(ctx, path, `transcript unit must be an object (got ${kindOf(raw)})`);
    return undefined;
  }
  const actor = requiredText(ctx, prop(raw, "actor"), `${path}.actor`, "actor");
  const actorId = optionalString(ctx, prop(raw, "actorID"), `${path}.actorID`, "actorID");
  const text = requiredString(ctx, prop(raw, "text"), `${path}.text`, "text");
  const times = readTimes(ctx, prop(raw, "metadata"), `${path}.metadata`);
  if (actor === undefined || actorId === undefined || text === undefined || times === undefined)
    return undefined;
  if (isBlank(text)) return null;
  return { actor, actorId, text, ...times };
}

function readTimes(
  ctx: RecordContext,
  value: unknown,
  path: string,
): { startMs: number | null; endMs: number | null } | undefined {
  if (isAbsent(value)) return { startMs: null, endMs: null };
  if (!isPlainObject(value)) {
    invalid(ctx, path, `unit metadata must be an object (got ${kindOf(value)})`);
    return undefined;
  }
  const startMs = readMillis(ctx, prop(value, "startTime"), `${path}.startTime`, "startTime");
  const endMs = readMillis(ctx, prop(value, "endTime"), `${path}.endTime`, "endTime");
  if (startMs === undefined || endMs === undefined) return undefined;
  if (startMs !== null && endMs !== null && endMs < startMs) {
    invalid(ctx, `${path}.endTime`, `endTime must not be before startTime (${endMs} < ${startMs})`);
    return undefined;
  }
  return { startMs, endMs };
}

function readMillis(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
): number | null | undefined {
  if (isAbsent(value)) return null;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    const got = typeof value === "number" ? String(value) : kindOf(value);
    invalid(ctx, path, `${name} must be a non-negative number of milliseconds (got ${got})`);
    return undefined;
  }
  return value;
}
