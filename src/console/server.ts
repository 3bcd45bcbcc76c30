import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { transformSync } from "amaro";
import type { FastifyInstance, FastifyReply } from "fastify";
import { notFound } from "../api/errors.ts";

/**
 * The admin console: a Preact app written in TypeScript (`src/console/app/`, type-checked with the rest)
 * and served as it is, with its types stripped on first request by amaro (the type stripper Node itself
 * uses: types become spaces, so lines and columns stay those of the source), so there is no build step: `npm ci` is
 * all a fresh clone needs. Its libraries come from `node_modules` through an import map; nothing is
 * fetched from elsewhere, and the Content-Security-Policy allows scripts, styles and requests from this
 * origin only.
 */

const APP_DIR = fileURLToPath(new URL("./app/", import.meta.url));
const moduleFile = (specifier: string) => fileURLToPath(import.meta.resolve(specifier));

/** The browser modules the console imports by name, and the installed packages' ES module files they are. */
const VENDOR: Record<string, string> = {
  "preact.js": moduleFile("preact"),
  "preact-hooks.js": moduleFile("preact/hooks"),
  "htm.js": moduleFile("htm"),
  "htm-preact.js": moduleFile("htm/preact"),
  "uplot.js": moduleFile("uplot/dist/uPlot.esm.js"),
  "uplot.css": moduleFile("uplot/dist/uPlot.min.css"),
};

const IMPORT_MAP = JSON.stringify({
  imports: {
    preact: "/console/vendor/preact.js",
    "preact/hooks": "/console/vendor/preact-hooks.js",
    htm: "/console/vendor/htm.js",
    "htm/preact": "/console/vendor/htm-preact.js",
    uplot: "/console/vendor/uplot.js",
  },
});

/** The one inline script is the import map; the policy names it by hash rather than allowing inline code. */
const IMPORT_MAP_HASH = createHash("sha256").update(IMPORT_MAP).digest("base64");

export const CONSOLE_CSP = [
  "default-src 'none'",
  `script-src 'self' 'sha256-${IMPORT_MAP_HASH}'`,
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Escalation Shield console</title>
<link rel="stylesheet" href="/console/vendor/uplot.css">
<link rel="stylesheet" href="/console/app/console.css">
<script type="importmap">${IMPORT_MAP}</script>
<script type="module" src="/console/app/main.ts"></script>
</head>
<body>
<noscript>The console needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;

/** App files a request may name: lower-case path segments under `app/`, no `..`. */
const APP_FILE = /^(?:[a-z0-9-]+\/)*[a-z0-9-]+\.(ts|css)$/;

function secured(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .type(type)
    .header("content-security-policy", CONSOLE_CSP)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", "no-cache");
}

/** `/console` and the files it loads. Outside `/api`: the page itself needs no key (it asks for one). */
export async function consoleRoutes(app: FastifyInstance): Promise<void> {
  const cache = new Map<string, string>();
  const load = async (key: string, read: () => Promise<string>) => {
    let body = cache.get(key);
    if (body === undefined) {
      body = await read();
      cache.set(key, body);
    }
    return body;
  };

  app.get("/console", { schema: { hide: true } }, async (_request, reply) =>
    secured(reply, "text/html; charset=utf-8").send(PAGE),
  );
  app.get("/console/", { schema: { hide: true } }, async (_request, reply) =>
    reply.redirect("/console", 301),
  );

  app.get<{ Params: { "*": string } }>(
    "/console/app/*",
    { schema: { hide: true } },
    async (request, reply) => {
      const path = request.params["*"];
      const match = APP_FILE.exec(path);
      if (!match) throw notFound("console file");
      const file = `${APP_DIR}${path}`;
      const body = await load(path, async () => {
        const text = await readFile(file, "utf8");
        return match[1] === "ts" ? transformSync(text, { mode: "strip-only" }).code : text;
      }).catch((err: unknown) => {
        if ((err as { code?: string }).code === "ENOENT") return undefined;
        throw err;
      });
      if (body === undefined) throw notFound("console file");
      return secured(
        reply,
        match[1] === "ts" ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8",
      ).send(body);
    },
  );

  app.get<{ Params: { name: string } }>(
    "/console/vendor/:name",
    { schema: { hide: true } },
    async (request, reply) => {
      const file = Object.hasOwn(VENDOR, request.params.name) ? VENDOR[request.params.name] : undefined;
      if (!file) throw notFound("console file");
      const body = await load(`vendor/${request.params.name}`, () => readFile(file, "utf8"));
      const type = file.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
      return secured(reply, type).send(body);
    },
  );
}
