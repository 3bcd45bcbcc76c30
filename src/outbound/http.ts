import { Agent, buildConnector, request } from "undici";
import { OutboundError, type OutboundErrorKind } from "../errors.ts";
import { type AddressPolicy, compilePolicy, outboundUrl, resolveCheckedAll } from "./guard.ts";

/**
 * The one way the product talks to URLs that customers type. Its rules:
 * - every request ends after `timeoutMs` (default 5 000) counted from the start: DNS, connect, TLS,
 *   headers and the whole body together;
 * - only absolute http(s) URLs without credentials are requested; anything else fails as `blocked`;
 * - redirects are never followed: a 3xx is returned as the status it is;
 * - the host is resolved as the OS would (hosts file, then DNS with c-ares, answers cached for their TTL
 *   up to 60 s) and every address checked against the {@link AddressPolicy}; the socket then connects to
 *   a checked address inside undici's connect step, so no second lookup can be rebound to another
 *   address; a refused address fails as `blocked` before any connect;
 * - when a connect to one address is refused or unreachable, the next checked address is tried, all
 *   within the same time limit;
 * - no per-origin socket limit: a request never waits inside its time limit for another destination's
 *   socket on the same host (the callers' concurrency bounds the sockets);
 * - TLS trusts Node's store plus `NODE_EXTRA_CA_CERTS` (undici's default context), never a fixed list;
 * - only the first `maxBodyBytes` (default 2 048) of the response body are kept; the rest is read and
 *   dropped so keep-alive connections can be reused.
 */
export interface OutboundRequest {
  method: "GET" | "POST" | "HEAD";
  url: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  maxBodyBytes?: number;
  /**
   * Return as soon as the status and headers are in, without reading the body (a large file is not
   * downloaded to learn its type); the connection is closed rather than reused. Default false.
   */
  headersOnly?: boolean;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The kept prefix of the body, decoded as UTF-8. */
  bodyExcerpt: string;
  durationMs: number;
}

export const ATTEMPT_TIMEOUT_MS = 5000;

export interface OutboundClient {
  send(req: OutboundRequest): Promise<OutboundResponse>;
  close(): Promise<void>;
}

/**
 * Connect errors after which the next address may answer: nothing listens there, or no route to it.
 * A timeout is not among them (it has used the attempt's time), nor is a TLS failure (the receiver's
 * own answer, which another address of it would most likely repeat).
 */
const NEXT_ADDRESS_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "EADDRNOTAVAIL",
  "EAFNOSUPPORT",
]);

/**
 * Builds the client. `connections` caps sockets per origin (default: no cap, so several destinations on
 * one host never queue for each other's sockets inside the time limit; the callers' concurrency bounds
 * the total). `timeoutMs` is the longest any request of this client may take, in milliseconds (default
 * {@link ATTEMPT_TIMEOUT_MS}; a request's own `timeoutMs` can only be shorter). Keep-alive sockets are
 * reused for 4 s of idleness, under the usual 5 s server keep-alive, so a reused socket is rarely closed
 * under us.
 */
export function createOutboundClient(
  policy: AddressPolicy,
  options: { connections?: number; timeoutMs?: number } = {},
): OutboundClient {
  const compiled = compilePolicy(policy);
  const longest = options.timeoutMs ?? ATTEMPT_TIMEOUT_MS;
  const tcpTls = buildConnector({ timeout: longest });
  type Connect = Parameters<typeof tcpTls>;
  // Every address here has passed the policy; the name stays in `host` for SNI and the identity check.
  const connectTo = (opts: Connect[0], addresses: string[], callback: Connect[1], at = 0): void => {
    tcpTls(
      { ...opts, hostname: addresses[at] as string, host: opts.host ?? opts.hostname },
      (err, socket) => {
        const code = (err as { code?: string } | null)?.code ?? "";
        if (err && at + 1 < addresses.length && NEXT_ADDRESS_CODES.has(code)) {
          connectTo(opts, addresses, callback, at + 1);
        } else if (err) {
          callback(err, null);
        } else {
          callback(null, socket);
        }
      },
    );
  };
  const agent = new Agent({
    connections: options.connections ?? null,
    keepAliveTimeout: 4000,
    keepAliveMaxTimeout: 4000,
    headersTimeout: longest,
    bodyTimeout: longest,
    connect(opts, callback) {
      resolveCheckedAll(compiled, opts.hostname).then(
        (addresses) => connectTo(opts, addresses, callback),
        (err: unknown) => callback(err as Error, null),
      );
    },
  });

  return {
    async send(req) {
      const started = performance.now();
      // AbortSignal.timeout takes whole milliseconds only.
      const signal = AbortSignal.timeout(Math.ceil(Math.min(req.timeoutMs ?? ATTEMPT_TIMEOUT_MS, longest)));
      const limit = req.maxBodyBytes ?? 2048;
      try {
        const url = outboundUrl(req.url);
        const res = await request(url, {
          method: req.method,
          headers: req.headers,
          body: req.body,
          signal,
          dispatcher: agent,
        });
        if (req.headersOnly) {
          // Not dump(): its `limit: 0` reads as "default" (128 KiB) and waits on a slow body. The listener
          // keeps the abort that destroy() raises on the stream from going unhandled.
          res.body.on("error", () => {});
          res.body.destroy();
          return {
            status: res.statusCode,
            headers: res.headers,
            bodyExcerpt: "",
            durationMs: Math.round(performance.now() - started),
          };
        }
        const kept: Buffer[] = [];
        let keptBytes = 0;
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          if (keptBytes < limit) {
            kept.push(chunk.subarray(0, limit - keptBytes));
            keptBytes += Math.min(chunk.length, limit - keptBytes);
          }
        }
        return {
          status: res.statusCode,
          headers: res.headers,
          bodyExcerpt: Buffer.concat(kept).toString("utf8"),
          durationMs: Math.round(performance.now() - started),
        };
      } catch (err) {
        throw toOutboundError(err, signal);
      }
    },
    async close() {
      await agent.close();
      compiled.resolver.cancel();
    },
  };
}

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL|HOSTNAME_MISMATCH)/;

function toOutboundError(err: unknown, signal: AbortSignal): OutboundError {
  if (err instanceof OutboundError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? "";
  let kind: OutboundErrorKind = "network";
  if (signal.aborted || e.name === "TimeoutError" || /TIMEOUT/.test(code)) kind = "timeout";
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ENODATA" || code === "ESERVFAIL")
    kind = "dns";
  else if (code === "ECONNREFUSED") kind = "refused";
  else if (
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "UND_ERR_SOCKET" ||
    code === "UND_ERR_CLOSED"
  )
    kind = "reset";
  else if (TLS_CODES.test(code)) kind = "tls";
  const message =
    kind === "timeout" ? "no complete response within the time limit" : (e.message ?? String(err));
  return new OutboundError(kind, message, { cause: err, code });
}
