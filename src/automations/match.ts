import type { Analysis, EscalationLevel, IntensityLevel } from "../analysis/analyzer.ts";
import type { RecordType } from "../db/schema.ts";
import type { NormalizedMetadata } from "../ingestion/types.ts";
import type { AutomationFilter, AutomationTrigger, MetadataCondition, MetadataScalar } from "./store.ts";

const ESCALATION_RANK: Record<EscalationLevel, number> = { none: 0, low: 1, medium: 2, high: 3, extreme: 4 };
const INTENSITY_RANK: Record<IntensityLevel, number> = { low: 1, medium: 2, high: 3, extreme: 4 };

/** What the matcher needs of a record. */
export interface MatchableRecord {
  integrationId: string;
  type: RecordType;
  metadata: NormalizedMetadata;
}

/** `undefined` when the automation fires; otherwise the first condition that failed, in words. */
export type Verdict = string | undefined;

function describe(value: unknown): string {
  return JSON.stringify(value);
}

function conditionHolds(c: MetadataCondition, metadata: NormalizedMetadata): boolean {
  const field = Object.hasOwn(metadata, c.field) ? metadata[c.field] : undefined;
  const values = field?.values ?? [];
  const equals = (a: MetadataScalar, b: unknown) => a === b;
  switch (c.op) {
    case "exists":
      return values.length > 0;
    case "eq":
      return values.some((v) => equals(v, c.value));
    case "neq":
      return !values.some((v) => equals(v, c.value));
    case "in": {
      const options = Array.isArray(c.value) ? c.value : [];
      return values.some((v) => options.some((o) => equals(v, o)));
    }
    case "gt":
    case "gte":
    case "lt":
    case "lte": {
      const bound = c.value;
      if (typeof bound !== "number") return false;
      return values.some((v) => {
        if (typeof v !== "number") return false;
        if (c.op === "gt") return v > bound;
        if (c.op === "gte") return v >= bound;
        if (c.op === "lt") return v < bound;
        return v <= bound;
      });
    }
  }
}

/** Whether a record passes an automation's feedback filter; every part must hold. */
export function filterVerdict(filter: AutomationFilter, record: MatchableRecord): Verdict {
  if (
    filter.integration_ids &&
    filter.integration_ids.length > 0 &&
    !filter.integration_ids.includes(record.integrationId)
  ) {
    return `filter: integration ${record.integrationId} is not one of ${describe(filter.integration_ids)}`;
  }
  if (filter.types && filter.types.length > 0 && !filter.types.includes(record.type)) {
    return `filter: type ${record.type} is not one of ${describe(filter.types)}`;
  }
  for (const c of filter.metadata ?? []) {
    if (!conditionHolds(c, record.metadata)) {
      const actual = record.metadata[c.field]?.values;
      const expected = c.op === "exists" ? "" : ` ${describe(c.value)}`;
      return `filter: metadata ${c.field} ${c.op}${expected} does not hold (value ${actual ? describe(actual) : "absent"})`;
    }
  }
  return undefined;
}

/** Whether an analysis meets an automation's thresholds. */
export function triggerVerdict(trigger: AutomationTrigger, analysis: Analysis): Verdict {
  if (ESCALATION_RANK[analysis.escalation_level] < ESCALATION_RANK[trigger.min_escalation_level]) {
    return `trigger: escalation level ${analysis.escalation_level} is below ${trigger.min_escalation_level}`;
  }
  const minIntensity = trigger.min_emotional_intensity_level;
  if (minIntensity && INTENSITY_RANK[analysis.emotional_intensity_level] < INTENSITY_RANK[minIntensity]) {
    return `trigger: emotional intensity ${analysis.emotional_intensity_level} is below ${minIntensity}`;
  }
  if (trigger.require_sentiment_degraded && analysis.sentiment_shift !== "sentiment degraded") {
    return `trigger: sentiment shift is ${analysis.sentiment_shift ?? "not known"}, not "sentiment degraded"`;
  }
  return undefined;
}

/**
 * Cuts `text` to at most `max` characters (default 500) at a word boundary, with an ellipsis when cut.
 * A single word longer than the limit is cut inside it rather than dropped.
 */
export function excerpt(text: string, max = 500): string {
  const clean = text.replace(/\s+/g, " ").trim();
  if (clean.length <= max) return clean;
  const room = max - 1;
  const cut = clean.slice(0, room + 1);
  const space = cut.lastIndexOf(" ");
  const head = space > room / 2 ? cut.slice(0, space) : clean.slice(0, room);
  return `${head.trimEnd()}…`;
}
