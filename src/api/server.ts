import type { AddressInfo } from "node:net";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Ajv, type Options as AjvOptions } from "ajv";
import addFormatsModule from "ajv-formats";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import { consoleRoutes } from "../console/server.ts";
import type { Runtime } from "../runtime.ts";
import { adminAuthHook, writeScopeHook } from "./auth.ts";
import { AuthFailures } from "./auth-failures.ts";
import {
  ApiError,
  clientErrorHandler,
  errorHandler,
  frameworkErrorHandler,
  newReferenceId,
  notFoundHandler,
} from "./errors.ts";
import { limitRequests } from "./rate-limit.ts";
import { auditLogRoutes } from "./routes/audit-log.ts";
import { automationRoutes } from "./routes/automations.ts";
import { deliveryRoutes } from "./routes/deliveries.ts";
import { emailRoutes } from "./routes/email.ts";
import { eventTypeRoutes } from "./routes/event-types.ts";
import { feedbackRoutes } from "./routes/feedback.ts";
import { healthRoutes } from "./routes/health.ts";
import { ingestionRoutes } from "./routes/ingestion.ts";
import { keyRoutes } from "./routes/keys.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { recordRoutes } from "./routes/records.ts";
import { publicKeyRoutes, signingKeyRoutes } from "./routes/signing.ts";
import { slackRoutes } from "./routes/slack.ts";
import { statsRoutes } from "./routes/stats.ts";
import { webhookRoutes } from "./routes/webhooks.ts";

/** Largest request body of the admin API, in bytes (1 MiB); larger ones get 413 `ErrCodePayloadTooLarge`. */
export const ADMIN_BODY_LIMIT = 1024 * 1024;

// ajv-formats is CommonJS with `exports.default`; under NodeNext its default import is the module object.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

/**
 * Two validators. Bodies are JSON and are checked as sent: a string "true" is not a boolean. Query strings and
 * path parameters are text by nature, so they are coerced (`?page=2` is the integer 2). Neither removes
 * unknown fields: schemas say `additionalProperties: false` and an unknown field is refused.
 */
function validatorCompilers() {
  const common: AjvOptions = {
    allErrors: false,
    removeAdditional: false,
    useDefaults: true,
    // Validation errors carry their schema, so the answer can use its `x-message`.
    verbose: true,
    // `x-message` and OpenAPI annotations are not validation keywords.
    strict: false,
  };
  const body = new Ajv({ ...common, coerceTypes: false });
  const text = new Ajv({ ...common, coerceTypes: true });
  addFormats(body);
  addFormats(text);
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === "body" ? body : text).compile(schema);
}

/**
 * @fastify/swagger marks every request body required; bodies that may be left out (see schemas.ts EmptyBody)
 * say so in the document.
 */
function markOptionalBodies<T extends { paths?: object }>(doc: T): T {
  for (const operations of Object.values(doc.paths ?? {}) as Record<string, unknown>[]) {
    for (const op of Object.values(operations) as {
      requestBody?: { required?: boolean; content?: object };
    }[]) {
      const body = op?.requestBody;
      const schema = (body?.content as Record<string, { schema?: Record<string, unknown> }> | undefined)?.[
        "application/json"
      ]?.schema;
      if (body && schema?.["x-optional-body"] === true) body.required = false;
    }
  }
  return doc;
}

/**
 * Builds the HTTP API (not listening): the admin REST API under `/api`, its OpenAPI document at `/docs/json`
 * (and a UI at `/docs`), `/healthz` / `/readyz`, Prometheus `/metrics`, and the public key URLs
 * `/webhooks/:id/public-key`. Every error answers `{msg, code, referenceID}`.
 */
/** An organization's admin requests per minute, as a multiple of the per-key limit. */
const ORG_LIMIT_MULTIPLE = 3;

export async function buildServer(rt: Runtime): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: rt.log,
    bodyLimit: ADMIN_BODY_LIMIT,
    genReqId: () => newReferenceId(),
    // The request id is the error body's referenceID: every log line of the request carries it.
    logController: new LogController({ requestIdLogLabel: "referenceID" }),
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    // Long ids are refused as 414 before routing; ours are at most 64 characters.
    routerOptions: { maxParamLength: 100 },
    // The client address (rate limits, failed-authentication counts) is the socket's unless the operator
    // names the proxies in front: then X-Forwarded-For as those proxies wrote it.
    trustProxy: rt.config.trustProxy.length > 0 ? rt.config.trustProxy : false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompilers());
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.decorateRequest("admin", null);
  // Every answer names its request, as error bodies do in `referenceID`: the audit log records it too.
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-reference-id", request.id);
  });
  // While `start` waits for Postgres to migrate, only the health routes answer: the tables may not exist yet.
  app.addHook("onRequest", async (request) => {
    if (rt.pending.size === 0 || request.url.startsWith("/healthz") || request.url.startsWith("/readyz"))
      return;
    throw new ApiError(503, "ErrCodeUnavailable", `starting: waiting for ${[...rt.pending].join(" and ")}`);
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Escalation Shield admin API",
        version: "1",
        description:
          "Manage webhook destinations, automations, delivery history and admin API keys. Every `/api` call carries `Authorization: Bearer <admin API key>` and sees only its own organization. Errors are `{msg, code, referenceID}`.",
      },
      servers: [{ url: rt.config.publicUrl }],
      components: {
        securitySchemes: {
          adminApiKey: { type: "http", scheme: "bearer", description: "An admin API key (`esk_…`)." },
          ingestionKey: {
            type: "apiKey",
            in: "header",
            name: "api-key",
            description: "A feedback integration's key (`esf_…`).",
          },
        },
      },
      tags: [
        { name: "webhooks", description: "Webhook destinations (outbound alerts)" },
        { name: "deliveries", description: "Delivery history and manual retries" },
        { name: "automations", description: "What fires alerts, and where they go" },
        { name: "keys", description: "Admin API keys" },
        { name: "feedback", description: "Feedback integrations and their ingestion keys" },
        { name: "records", description: "Stored feedback records and why automations fired" },
        { name: "ingestion", description: "The feedback ingestion webhook and its payload validator" },
        { name: "health", description: "Liveness and readiness" },
        { name: "metrics", description: "Prometheus metrics (no key: keep them off public networks)" },
        {
          name: "signing",
          description: "Public keys receivers verify Ed25519 signatures with (no key needed)",
        },
      ],
    },
    transformObject: (documents) =>
      markOptionalBodies("openapiObject" in documents ? documents.openapiObject : {}),
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  await app.register(healthRoutes, { rt });
  await app.register(consoleRoutes);
  await app.register(metricsRoutes, { rt });
  await app.register(ingestionRoutes, { rt });
  // Outside `/api`: receivers fetch public keys without an admin key.
  await app.register(publicKeyRoutes, { rt });

  await app.register(
    async (api) => {
      // JSON only: Fastify's built-in text/plain parser would hand handlers a string.
      api.removeContentTypeParser("text/plain");
      // Authentication first, so the rate limit can count per key rather than per address.
      api.addHook(
        "onRequest",
        adminAuthHook(rt.database.db, new AuthFailures(rt.redis, rt.config.queuePrefix)),
      );
      // After onRequest (auth), before the body is read: an over-limit caller costs no parsing.
      await limitRequests(api, rt, {
        name: "admin",
        max: rt.config.adminRateLimitPerMinute,
        per: "API key",
        key: (request) => request.admin?.tokenHash ?? request.ip,
        hook: "preParsing",
      });
      // A scope of its own: the plugin registers once per scope. Keys are minted by the organization
      // itself, so without this one many keys would each get the full per-key limit.
      await api.register(async (org) => {
        await limitRequests(org, rt, {
          name: "admin-org",
          max: rt.config.adminRateLimitPerMinute * ORG_LIMIT_MULTIPLE,
          per: "organization",
          key: (request) => request.admin?.orgId ?? request.ip,
          hook: "preParsing",
        });
        // The limits attach to each route, so this does too, after them: a refused write still counts.
        org.addHook("onRoute", (route) => {
          const hooks = route.preParsing;
          route.preParsing = [...(Array.isArray(hooks) ? hooks : hooks ? [hooks] : []), writeScopeHook];
        });
        await org.register(keyRoutes, { rt });
        await org.register(auditLogRoutes, { rt });
        await org.register(statsRoutes, { rt });
        await org.register(eventTypeRoutes, { rt });
        await org.register(webhookRoutes, { rt });
        await org.register(signingKeyRoutes, { rt });
        await org.register(slackRoutes, { rt });
        await org.register(emailRoutes, { rt });
        for (const kind of ["webhook", "slack", "email"] as const) {
          await org.register(deliveryRoutes, { rt, kind });
        }
        await org.register(automationRoutes, { rt });
        await org.register(feedbackRoutes, { rt });
        await org.register(recordRoutes, { rt });
      });
    },
    { prefix: "/api" },
  );

  await app.ready();
  return app as unknown as FastifyInstance;
}

/** Builds the server and listens on config.host/config.port (0 picks a free port); `url` is where it listens. */
export async function startServer(rt: Runtime): Promise<{ close(): Promise<void>; url: string }> {
  const app = await buildServer(rt);
  await app.listen({ host: rt.config.host, port: rt.config.port });
  const address = app.server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  rt.log.info({ url }, "HTTP API listening");
  return {
    url,
    close: () => app.close(),
  };
}
