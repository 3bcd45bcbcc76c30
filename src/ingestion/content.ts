import type { RecordType } from "../db/schema.ts";
import { readAudio } from "./audio.ts";
import { readMessages } from "./conversation.ts";
import type { RecordContext } from "./issues.ts";
import { type JsonObject, prop, requiredText } from "./read.ts";
import { readSurvey } from "./survey.ts";
import type { RecordContent } from "./types.ts";

/** The type-specific part of a record; undefined after reporting. */
export function readContent(
  ctx: RecordContext,
  type: RecordType,
  record: JsonObject,
  base: string,
): RecordContent | undefined {
  switch (type) {
    case "REVIEW":
      return readReview(ctx, record, base);
    case "SURVEY":
      return readSurvey(ctx, record, base);
    case "CONVERSATION":
    case "FORUM_CONVERSATION_THREAD":
      return readMessages(ctx, record, base);
    case "AUDIO_RECORDING":
      return readAudio(ctx, record, base);
  }
}

function readReview(ctx: RecordContext, record: JsonObject, base: string): RecordContent | undefined {
  const text = requiredText(ctx, prop(record, "text"), `${base}.text`, "text");
  return text === undefined ? undefined : { kind: "text", text };
}
