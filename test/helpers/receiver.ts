import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { testTls } from "./env.ts";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  /** The raw body, exactly as it arrived. */
  body: string;
  /** Arrival time in ms (Date.now()). */
  at: number;
}

/** Decides the answer to the n-th request (0-based). Default: 200 `{"ok":true}`. */
export type Behaviour = (req: ReceivedRequest, res: ServerResponse, n: number) => void;

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Replaces the behaviour for requests from now on. */
  setBehaviour(b: Behaviour): void;
  close(): Promise<void>;
}

export const ok: Behaviour = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
};

/**
 * A real HTTPS (or HTTP) server on 127.0.0.1 with a random port, signed by the test CA. Every request is
 * recorded once its body has fully arrived, before the behaviour answers.
 */
export async function startReceiver(
  options: { tls?: boolean; behaviour?: Behaviour; path?: string } = {},
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let behaviour = options.behaviour ?? ok;
  const sockets = new Set<Socket>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
      };
      const n = requests.length;
      requests.push(r);
      behaviour(r, res, n);
    });
  };
  const server: Server =
    options.tls === false ? createHttpServer(handler) : createHttpsServer({ ...testTls() }, handler);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const scheme = options.tls === false ? "http" : "https";
  return {
    url: `${scheme}://127.0.0.1:${port}${options.path ?? "/hook"}`,
    requests,
    setBehaviour(b) {
      behaviour = b;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
