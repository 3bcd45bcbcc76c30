import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy on 127.0.0.1 in front of one server (Postgres, Redis), for simulating outages without
 * touching the shared server itself. Every fault applies to this proxy's own connections only.
 */
export interface TcpProxy {
  /** The port it listens on; it keeps this port across `refuse()` / `accept()`. */
  readonly port: number;
  /** Connections open now (client side). */
  readonly connections: number;
  /** Closes every current connection, both sides (an orderly close, as when a server restarts). */
  cut(): void;
  /** Aborts every current connection, both sides, with a TCP RST (ECONNRESET at the client). */
  reset(): void;
  /** Stops forwarding in both directions; sockets stay open and new ones are accepted but hang. */
  stall(): void;
  /** Forwards again, including what arrived while stalled. */
  resume(): void;
  /** Stops listening: new connections are refused (ECONNREFUSED). Current ones are left alone. */
  refuse(): Promise<void>;
  /** Listens again on the same port. */
  accept(): Promise<void>;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Starts a proxy to `target` (`host:port` or a URL such as `postgres://…@127.0.0.1:5432/db`). */
export async function startProxy(target: string): Promise<TcpProxy> {
  const parsed = target.includes("://") ? new URL(target) : new URL(`tcp://${target}`);
  const host = parsed.hostname;
  const targetPort = Number(parsed.port);
  const pairs = new Set<Pair>();
  let stalled = false;
  let server: Server | undefined;
  let port = 0;

  // Each direction queues what arrives while stalled and pauses its reader, so a stall costs no memory.
  const forward = (from: Socket, to: Socket, pending: Buffer[]) => {
    from.on("data", (chunk: Buffer) => {
      if (stalled || pending.length > 0) {
        pending.push(chunk);
        from.pause();
        return;
      }
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => {
          if (!stalled) from.resume();
        });
      }
    });
    from.on("end", () => to.end());
  };

  const flush = (from: Socket, to: Socket, pending: Buffer[]) => {
    for (const chunk of pending.splice(0)) to.write(chunk);
    from.resume();
  };

  const queues = new WeakMap<Socket, Buffer[]>();

  const onConnection = (client: Socket) => {
    const upstream = connect(targetPort, host);
    const pair = { client, upstream };
    pairs.add(pair);
    const toUpstream: Buffer[] = [];
    const toClient: Buffer[] = [];
    queues.set(client, toUpstream);
    queues.set(upstream, toClient);
    forward(client, upstream, toUpstream);
    forward(upstream, client, toClient);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // A failure on either side ends both, as a real network path would; the error itself is expected.
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
  };

  const listen = async () => {
    const s = createServer(onConnection);
    s.listen(port, "127.0.0.1");
    await once(s, "listening");
    port = (s.address() as AddressInfo).port;
    server = s;
  };

  const stopListening = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    // close() frees the port at once; its callback would wait for current connections, which stay.
    s.close();
  };

  const cut = () => {
    for (const p of [...pairs]) {
      pairs.delete(p);
      p.client.destroy();
      p.upstream.destroy();
    }
  };

  await listen();

  return {
    get port() {
      return port;
    },
    get connections() {
      return pairs.size;
    },
    cut,
    reset() {
      for (const p of [...pairs]) {
        pairs.delete(p);
        p.client.resetAndDestroy();
        p.upstream.resetAndDestroy();
      }
    },
    stall() {
      stalled = true;
    },
    resume() {
      stalled = false;
      for (const p of pairs) {
        flush(p.client, p.upstream, queues.get(p.client) ?? []);
        flush(p.upstream, p.client, queues.get(p.upstream) ?? []);
      }
    },
    refuse: stopListening,
    async accept() {
      if (!server) await listen();
    },
    async close() {
      await stopListening();
      cut();
    },
  };
}
