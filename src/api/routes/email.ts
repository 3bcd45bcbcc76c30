import { Type } from "typebox";
import { EMAIL_DEFAULT_RATE_PER_SECOND, type EmailSettings } from "../../channels/email.ts";
import type { DestinationView } from "../../destinations/others.ts";
import type { Runtime } from "../../runtime.ts";
import { ApiError, invalidField } from "../errors.ts";
import { Nullable } from "../schemas.ts";
import {
  DestinationName,
  destinationRoutes,
  PATCH_BODY_OPTIONS,
  presentShared,
  RateInput,
  SharedViewFields,
  sharedBodyFields,
  sharedChanges,
  sharedInput,
} from "./other-destinations.ts";

/** Recipients of one email destination, `to` and `cc` together. */
const MAX_RECIPIENTS = 20;

const Address = Type.String({ format: "email", maxLength: 254 });
const To = Type.Array(Address, { minItems: 1, maxItems: MAX_RECIPIENTS, uniqueItems: true });
const Cc = Type.Array(Address, { maxItems: MAX_RECIPIENTS, uniqueItems: true });
const EmailRate = RateInput(`${EMAIL_DEFAULT_RATE_PER_SECOND} per second`);

const shared = sharedBodyFields(EmailRate);

const CreateBody = Type.Object(
  { name: Type.Optional(DestinationName), to: To, cc: Type.Optional(Cc), ...shared.create },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  { name: Type.Optional(DestinationName), to: Type.Optional(To), cc: Type.Optional(Cc), ...shared.patch },
  PATCH_BODY_OPTIONS,
);

const Email = Type.Object({
  id: Type.String({ description: "`eml_…`" }),
  kind: Type.Literal("email"),
  name: Nullable(Type.String()),
  to: Type.Array(Type.String()),
  cc: Type.Array(Type.String()),
  ...SharedViewFields,
});

/**
 * Recipients are checked against the operator's rules: SMTP_URL must be set at all, at most 20 of them, and
 * with EMAIL_ALLOWED_DOMAINS only those domains (so a tenant cannot use the server as a relay).
 */
function recipients(rt: Runtime, to: string[], cc: string[]): EmailSettings {
  if (!rt.config.smtp) {
    throw new ApiError(
      400,
      "ErrCodeBadRequest",
      "email destinations need an SMTP server: the operator has not set SMTP_URL",
    );
  }
  if (to.length + cc.length > MAX_RECIPIENTS) {
    throw invalidField("body.cc", `to and cc together may name at most ${MAX_RECIPIENTS} recipients`);
  }
  const allowed = rt.config.emailAllowedDomains;
  if (allowed.length > 0) {
    for (const [field, list] of [
      ["to", to],
      ["cc", cc],
    ] as const) {
      const bad = list.findIndex((a) => !allowed.includes(a.slice(a.lastIndexOf("@") + 1).toLowerCase()));
      if (bad >= 0) {
        throw invalidField(
          `body.${field}[${bad}]`,
          `must be an address at ${allowed.join(", ")} (EMAIL_ALLOWED_DOMAINS)`,
        );
      }
    }
  }
  return { to, cc };
}

const shown = (s: EmailSettings) => `mailto:${s.to.join(",")}`;

/** `/api/integrations/email`: email destinations; the rest of their routes are every kind's (deliveries.ts). */
export const emailRoutes = destinationRoutes({
  kind: "email",
  CreateBody,
  PatchBody,
  View: Email,
  present: (d: DestinationView) => {
    const s = (d.settings as EmailSettings | null) ?? { to: [], cc: [] };
    return {
      id: d.id,
      kind: "email" as const,
      name: d.name,
      to: s.to,
      cc: s.cc,
      ...presentShared(d, EMAIL_DEFAULT_RATE_PER_SECOND),
    };
  },
  toInput(rt, b) {
    const settings = recipients(rt, b.to, b.cc ?? []);
    return { ...sharedInput(b), shown: shown(settings), settings };
  },
  toChanges(rt, b, current) {
    const stored = (current.settings as EmailSettings | null) ?? { to: [], cc: [] };
    const settings =
      b.to === undefined && b.cc === undefined
        ? undefined
        : recipients(rt, b.to ?? stored.to, b.cc ?? stored.cc);
    return { ...sharedChanges(b), shown: settings && shown(settings), settings };
  },
});
