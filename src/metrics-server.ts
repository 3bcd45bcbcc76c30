import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "./log.ts";

/**
 * A minimal HTTP server for `worker` processes, which run no API: `GET /metrics` answers the registry in
 * Prometheus text format, anything else 404 (405 for other methods on `/metrics`). No authentication, like
 * the API's `/metrics`: bind it to a private interface (HOST) or keep the port off public networks.
 * `port` 0 picks a free one; `url` is where it listens.
 */
export async function startMetricsServer(
  registry: Registry,
  host: string,
  port: number,
  log: Logger,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end();
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      // Collectors do not throw (see metrics.ts); this only guards against a bug in one.
      (err: unknown) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, "metrics scrape failed");
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("scrape failed\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err: err.message }, "metrics server error"));
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${shown}:${address.port}/metrics`;
  log.info({ url }, "metrics listening");
  return {
    url,
    async close() {
      const closed = once(server, "close");
      server.close();
      // A scraper's keep-alive connection would otherwise hold the close open until it times out.
      server.closeAllConnections();
      await closed;
    },
  };
}
