import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { eventCatalog } from "../../destinations/catalog.ts";
import type { Runtime } from "../../runtime.ts";
import { adminSecurity, errorResponses, NoQuery } from "../schemas.ts";

const Entry = Type.Object({
  type: Type.String(),
  description: Type.String(),
  schema: Type.Record(Type.String(), Type.Unknown(), { description: "JSON Schema (2020-12) of the body." }),
  example: Type.Unknown(),
});

/** `GET /api/event-types`: the event catalog receivers can validate deliveries against. */
export const eventTypeRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const catalog = eventCatalog(rt.config.publicUrl);
  app.get(
    "/event-types",
    {
      schema: {
        tags: ["events"],
        security: adminSecurity,
        summary: "List every event type with the JSON Schema of its payload and an example",
        description:
          "What a webhook receives for each type: `escalation.alert` is the seed-001 body; the others arrive in the seed-003 envelope `{id, event, created_at, data}`. Slack and email destinations get the same events rendered as messages.",
        querystring: NoQuery,
        response: { 200: Type.Object({ data: Type.Array(Entry) }), ...errorResponses },
      },
    },
    async () => ({ data: catalog }),
  );
};
