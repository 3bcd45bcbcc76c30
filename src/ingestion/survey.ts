import { indexPath, invalid, kindOf, missing, type RecordContext } from "./issues.ts";
import { isAbsent, isBlank, isPlainObject, prop, requiredArray, requiredObject } from "./read.ts";
import type { RecordContent, SurveyAnswer } from "./types.ts";

/**
 * A SURVEY's `surveyResponse.responses`. Responses with neither an answer nor selected options carry no
 * feedback and are dropped (seed 000); every other response needs a question. Returns undefined after
 * reporting.
 */
export function readSurvey(
  ctx: RecordContext,
  record: Record<string, unknown>,
  base: string,
): RecordContent | undefined {
  const surveyPath = `${base}.surveyResponse`;
  const survey = requiredObject(ctx, prop(record, "surveyResponse"), surveyPath, "surveyResponse");
  if (survey === undefined) return undefined;
  const responsesPath = `${surveyPath}.responses`;
  const raw = requiredArray(ctx, prop(survey, "responses"), responsesPath, "surveyResponse.responses");
  if (raw === undefined) return undefined;
  const before = ctx.issues.length;
  const responses: SurveyAnswer[] = [];
  for (let i = 0; i < raw.length; i++) {
    const response = readResponse(ctx, raw[i], indexPath(responsesPath, i));
    if (response) responses.push(response);
  }
  if (ctx.issues.length > before) return undefined;
  if (responses.length === 0) {
    missing(
      ctx,
      responsesPath,
      "no survey response has an answer or selectedOptions, so the survey carries no feedback",
    );
    return undefined;
  }
  return { kind: "survey", responses };
}

/** One response: the answered form, null when it has nothing to keep, undefined after reporting. */
function readResponse(ctx: RecordContext, raw: unknown, path: string): SurveyAnswer | null | undefined {
  if (!isPlainObject(raw)) {
    invalid(ctx, path, `survey response must be an object (got ${kindOf(raw)})`);
    return undefined;
  }
  const answer = readStringList(ctx, prop(raw, "answer"), `${path}.answer`, "answer", true);
  const selectedOptions = readStringList(
    ctx,
    prop(raw, "selectedOptions"),
    `${path}.selectedOptions`,
    "selectedOptions",
    false,
  );
  if (answer === undefined || selectedOptions === undefined) return undefined;
  if (answer.length === 0 && selectedOptions.length === 0) return null;
  const question = readQuestion(ctx, prop(raw, "question"), `${path}.question`);
  return question === undefined ? undefined : { question, answer, selectedOptions };
}

function readQuestion(ctx: RecordContext, value: unknown, path: string): string | undefined {
  const rule = "question must be non-empty when the response has an answer or selectedOptions";
  if (isAbsent(value) || (typeof value === "string" && isBlank(value))) {
    missing(ctx, path, rule);
    return undefined;
  }
  if (typeof value !== "string") {
    invalid(ctx, path, `question must be a string (got ${kindOf(value)})`);
    return undefined;
  }
  return value;
}

/** Absent is an empty list; blank entries say nothing and are left out. */
function readStringList(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
  allowSingle: boolean,
): string[] | undefined {
  if (isAbsent(value)) return [];
  if (allowSingle && typeof value === "string") return isBlank(value) ? [] : [value];
  if (!Array.isArray(value)) {
    const shape = allowSingle ? "a string or an array of strings" : "an array of strings";
    invalid(ctx, path, `${name} must be ${shape} (got ${kindOf(value)})`);
    return undefined;
  }
  const out: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const entry: unknown = value[i];
    if (typeof entry !== "string") {
      invalid(ctx, indexPath(path, i), `${name} entries must be strings (got ${kindOf(entry)})`);
      return undefined;
    }
    if (!isBlank(entry)) out.push(entry);
  }
  return out;
}
