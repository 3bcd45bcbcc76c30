import { Type } from "typebox";
import { DestinationGuard } from "../delivery/isolation.ts";
import type { Runtime } from "../runtime.ts";
import { iso, Nullable, StringEnum, Timestamp } from "./schemas.ts";

/** A destination's health as lists and `GET` show it, for every kind. */
export const Health = Type.Object(
  {
    state: StringEnum(["healthy", "failing", "disabled"] as const, {
      description:
        "`failing` from the first failed attempt after a success until the next success (health disables it after DESTINATION_DISABLE_AFTER_S); `disabled` when turned off, by an admin or by health (`disabled_reason` says which).",
    }),
    failing_since: Nullable(Timestamp("When it started failing; null unless failing.")),
    breaker: StringEnum(["closed", "open", "half-open"] as const, {
      description: "The circuit breaker: `open` while attempts wait out a cool-down after failures in a row.",
    }),
  },
  { description: "Endpoint health and the circuit breaker's state now." },
);

interface HealthRow {
  id: string;
  enabled: boolean;
  failingSince: Date | null;
}

/**
 * Reads the health of destinations: the state from their rows, the breaker from Redis (by Redis's clock,
 * as the workers judge it).
 */
export function healthReader(rt: Runtime) {
  const guard = new DestinationGuard(rt.redis, rt.config.queuePrefix, {
    maxInFlight: rt.config.destinationMaxInFlight,
    failureThreshold: rt.config.breakerFailureThreshold,
    cooldownMs: rt.config.breakerCooldownMs,
  });
  return async (rows: HealthRow[]) => {
    const breakers = await Promise.all(rows.map((r) => guard.state(r.id)));
    return new Map(
      rows.map((r, i) => [
        r.id,
        {
          state: !r.enabled
            ? ("disabled" as const)
            : r.failingSince
              ? ("failing" as const)
              : ("healthy" as const),
          failing_since: r.enabled ? iso(r.failingSince) : null,
          breaker: breakers[i] ?? "closed",
        },
      ]),
    );
  };
}
