import type { FastifyRequest } from "fastify";
import { type TSchema, type TUnsafe, Type } from "typebox";

/**
 * Schema pieces every admin route shares. Request schemas are strict (`additionalProperties: false`) so an
 * unknown or misspelt field is refused instead of silently ignored.
 */

/** A string from a fixed list, documented as `type: string` + `enum` (what OpenAPI tools expect). */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string; default?: T[number] } = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: "string", enum: [...values], ...options });
}

/** `X | null`, for optional-and-clearable fields and nullable response fields. */
export function Nullable<T extends TSchema>(schema: T, options: { description?: string } = {}) {
  return Type.Union([schema, Type.Null()], options);
}

export const ErrorBodySchema = Type.Object(
  {
    msg: Type.String({ description: "What is wrong; names the field for validation errors." }),
    code: StringEnum([
      "ErrCodeMissingRequiredField",
      "ErrCodeInvalidFieldFormat",
      "ErrCodeBadRequest",
      "ErrCodeTooManyRecords",
      "ErrCodePayloadTooLarge",
      "ErrCodeRateLimited",
      "ErrCodeUnauthorized",
      "ErrCodeForbidden",
      "ErrCodeNotFound",
      "ErrCodeUnavailable",
      "ErrCodeInternal",
    ]),
    referenceID: Type.String({
      description: "Quote this to support: it is in every log line of the request.",
    }),
  },
  { description: "Every error answer has this shape." },
);

/** Error answers of every route, for the OpenAPI document. */
export const errorResponses = {
  "4xx": ErrorBodySchema,
  "5xx": ErrorBodySchema,
};

/** Routes that take no query parameters still refuse unknown ones. */
export const NoQuery = Type.Object({}, { additionalProperties: false });

/** Routes that take no body accept none or `{}`, nothing else (with {@link noBodyIsEmpty}). */
export const EmptyBody = Type.Object(
  {},
  { additionalProperties: false, description: "No body, or `{}`.", "x-optional-body": true },
);

/** A `preValidation` hook: a request without a body is validated as `{}`. */
export async function noBodyIsEmpty(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/** An id in a path. Any string up to 64 characters: one that matches nothing answers 404 like any unknown id. */
export const PathId = (description: string) => Type.String({ minLength: 1, maxLength: 64, description });

export const Timestamp = (description?: string) =>
  Type.String({ format: "date-time", ...(description ? { description } : {}) });

/** The security requirement of admin routes (see the `adminApiKey` scheme in server.ts). */
export const adminSecurity = [{ adminApiKey: [] }];

/** Dates in answers: ISO 8601 in UTC with milliseconds. */
export function iso(d: Date): string;
export function iso(d: Date | null): string | null;
export function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}
