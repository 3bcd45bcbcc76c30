/**
 * What an outbound-safety test needs, for any feature that fetches a URL a customer gave (deliveries,
 * test deliveries, and the ingestion's audio URL check): a DNS server on loopback to point DNS_SERVERS
 * at, listeners that count every connection they get (a trap must get none), and a table of address
 * forms that must all be refused before any connect.
 *
 *   const dns = await startTestDns(SSRF_DNS_ZONE);          // DNS_SERVERS=dns.server
 *   const trap = await startListener(TRAP_HOSTS);           // 127.0.0.1, ::1 and two CIDR neighbours
 *   for (const c of forbiddenUrlCases(trap.port)) { …fetch c.url through the product… }
 *   assert.equal(trap.connections, 0);
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createServer as createDnsServer, Packet } from "dns2";

/** Names the test DNS server answers, with their addresses in answer order (A and AAAA alike). */
export type Zone = Record<string, string[]>;

/** A public address; only ever resolved, never connected to. */
export const PUBLIC_V4 = "93.184.216.34";
export const PUBLIC_V6 = "2606:4700:4700::1111";

/** Allowlist the SSRF tests run with: one host name and one CIDR (127.0.0.8 – 127.0.0.11). */
export const TEST_ALLOWLIST = "allowed.test,127.0.0.8/30";
/** Inside the allowlisted CIDR. */
export const CIDR_INSIDE = "127.0.0.9";
/** Just outside it, on each side. */
export const CIDR_NEIGHBOURS = ["127.0.0.7", "127.0.0.12"];
/** Where a trap listens: loopback v4 and v6, and the CIDR's neighbours. */
export const TRAP_HOSTS = ["127.0.0.1", "::1", ...CIDR_NEIGHBOURS];

export const SSRF_DNS_ZONE: Zone = {
  localhost: ["127.0.0.1", "::1"],
  "loopback.test": ["127.0.0.1"],
  "private10.test": ["10.0.0.1"],
  "private172.test": ["172.16.5.4"],
  "private192.test": ["192.168.1.1"],
  "metadata.test": ["169.254.169.254"],
  "cgnat.test": ["100.64.0.1"],
  "v6loop.test": ["::1"],
  "ula.test": ["fd00::1"],
  "linklocal6.test": ["fe80::1"],
  "mapped.test": ["::ffff:7f00:1"],
  "nat64.test": ["64:ff9b::a9fe:a9fe"],
  "public-then-private.test": [PUBLIC_V4, "127.0.0.1"],
  "public-then-private6.test": [PUBLIC_V6, "::1"],
  "public4-private6.test": [PUBLIC_V4, "::1"],
  "public.test": [PUBLIC_V4, PUBLIC_V6],
  "allowed.test": ["127.0.0.1"],
  "sub.allowed.test": ["127.0.0.1"],
  "allowed.test.evil.test": ["127.0.0.1"],
  "cidr-in.test": [CIDR_INSIDE],
  "cidr-out.test": [CIDR_NEIGHBOURS[1] as string],
};

/** A name the server receives and never answers: resolution must time out, not hang. */
export const SILENT_NAME = "silent.test";

/** How the test DNS server misbehaves or answers, beyond its zone. */
export interface TestDnsOptions {
  /**
   * Names whose AAAA queries get no answer at all, as from a resolver or middlebox that drops them;
   * `true` for every name. Default none.
   */
  dropAaaa?: boolean | string[];
  /** TTL of every answer, in seconds. Default 1. */
  ttl?: number;
}

/**
 * A UDP DNS server on 127.0.0.1 (random port) answering A and AAAA from `zone`, NXDOMAIN for other
 * names, and nothing at all for {@link SILENT_NAME}. `server` is the `ip:port` for DNS_SERVERS.
 * `queries` lists every question's name; `typedQueries` the same as `A name` / `AAAA name`.
 */
export async function startTestDns(
  zone: Zone,
  options: TestDnsOptions = {},
): Promise<{ server: string; queries: string[]; typedQueries: string[]; close(): Promise<void> }> {
  const queries: string[] = [];
  const typedQueries: string[] = [];
  const dropAaaa = options.dropAaaa ?? false;
  const lower = new Map(Object.entries(zone).map(([k, v]) => [k.toLowerCase(), v]));
  const dns = createDnsServer({
    udp: true,
    handle: (request, send) => {
      const [question] = request.questions;
      const response = Packet.createResponseFromRequest(request);
      if (!question) return void send(response);
      const name = question.name.toLowerCase().replace(/\.$/, "");
      queries.push(name);
      const typeName =
        question.type === Packet.TYPE.AAAA ? "AAAA" : question.type === Packet.TYPE.A ? "A" : "other";
      typedQueries.push(`${typeName} ${name}`);
      if (name === SILENT_NAME) return;
      if (typeName === "AAAA" && (dropAaaa === true || (Array.isArray(dropAaaa) && dropAaaa.includes(name))))
        return;
      const addresses = lower.get(name);
      if (addresses === undefined) {
        response.header.rcode = Packet.RCODE.NXDOMAIN;
        return void send(response);
      }
      const wanted = question.type === Packet.TYPE.AAAA ? 6 : question.type === Packet.TYPE.A ? 4 : 0;
      for (const address of addresses) {
        if ((address.includes(":") ? 6 : 4) !== wanted) continue;
        // dns2 encodes answers from these fields; its type also lists the method records get when parsed.
        const answer = {
          name: question.name,
          type: wanted === 6 ? Packet.TYPE.AAAA : Packet.TYPE.A,
          class: Packet.CLASS.IN,
          ttl: options.ttl ?? 1,
          address,
        };
        response.answers.push(answer as unknown as (typeof response.answers)[number]);
      }
      void send(response);
    },
  });
  const addresses = await dns.listen({ udp: { port: 0, address: "127.0.0.1" } });
  return {
    server: `127.0.0.1:${addresses.udp?.port}`,
    queries,
    typedQueries,
    close: () => dns.close(),
  };
}

export interface Listener {
  port: number;
  /** TCP connections accepted, whatever came over them. */
  connections: number;
  /** Requests that arrived, as `<listening address> <method> <path>`. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Plain-HTTP servers on each of `hosts`, all on one port, answering 200 to anything. As a trap it shows
 * whether anything connected at all; as a receiver it shows what arrived.
 */
export async function startListener(hosts: string[]): Promise<Listener> {
  for (let tries = 0; ; tries++) {
    const servers: Server[] = [];
    const sockets = new Set<Socket>();
    const state: Listener = {
      port: 0,
      connections: 0,
      requests: [],
      async close() {
        for (const s of sockets) s.destroy();
        await Promise.all(servers.map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))));
      },
    };
    try {
      for (const host of hosts) {
        const server = createServer((req, res) => {
          state.requests.push(`${host} ${req.method} ${req.url}`);
          req.resume();
          req.on("end", () => res.writeHead(200, { "content-type": "text/plain" }).end("ok"));
        });
        server.on("connection", (s: Socket) => {
          state.connections++;
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
        });
        servers.push(server);
        server.listen(state.port, host);
        await once(server, "listening");
        state.port = (server.address() as AddressInfo).port;
      }
      return state;
    } catch (err) {
      await state.close();
      // The port picked on the first host may be taken on another; pick again.
      if (tries >= 5) throw err;
    }
  }
}

/** One address form that must be refused: `url` is fetched through the product; nothing may connect. */
export interface ForbiddenCase {
  name: string;
  url: string;
}

/**
 * The forbidden forms, at the trap's `port` where a wrongly allowed connect would land on a trap
 * (loopback forms) and at the default port elsewhere (those are never connected to by a correct guard,
 * and the tests check each with the guard alone before sending anything).
 */
export function forbiddenUrlCases(port: number): ForbiddenCase[] {
  const at = (host: string, path = "/hook") => `http://${host}:${port}${path}`;
  return [
    { name: "IPv4 loopback", url: at("127.0.0.1") },
    { name: "IPv4 loopback over https", url: `https://127.0.0.1:${port}/hook` },
    { name: "decimal IPv4", url: at("2130706433") },
    { name: "hex IPv4 two parts", url: at("0x7f.1") },
    { name: "octal IPv4", url: at("0177.0.0.1") },
    { name: "hex IPv4 one part", url: at("0x7f000001") },
    { name: "octal IPv4 one part", url: at("017700000001") },
    { name: "short IPv4", url: at("127.1") },
    { name: "unspecified 0.0.0.0", url: at("0.0.0.0") },
    { name: "unspecified as 0", url: at("0") },
    { name: "IPv6 loopback", url: at("[::1]") },
    { name: "IPv6 loopback long form", url: at("[0:0:0:0:0:0:0:1]") },
    { name: "IPv6 unspecified", url: at("[::]") },
    { name: "IPv4-mapped dotted", url: at("[::ffff:127.0.0.1]") },
    { name: "IPv4-mapped hex", url: at("[::ffff:7f00:1]") },
    { name: "IPv4-mapped long form", url: at("[0:0:0:0:0:ffff:7f00:1]") },
    { name: "IPv4-compatible", url: at("[::127.0.0.1]") },
    { name: "IPv4-translated", url: at("[::ffff:0:7f00:1]") },
    { name: "NAT64 loopback", url: at("[64:ff9b::7f00:1]") },
    { name: "NAT64 metadata", url: at("[64:ff9b::a9fe:a9fe]") },
    { name: "6to4 of loopback", url: at("[2002:7f00:1::]") },
    { name: "IPv6 link-local with zone id", url: at("[fe80::1%25lo]") },
    { name: "cloud metadata", url: "http://169.254.169.254/latest/meta-data/" },
    { name: "cloud metadata, IPv4-mapped", url: "http://[::ffff:a9fe:a9fe]/latest/meta-data/" },
    { name: "cloud metadata, decimal", url: "http://2852039166/latest/meta-data/" },
    { name: "CGNAT", url: "http://100.64.0.1/" },
    { name: "private 10/8", url: "http://10.0.0.1/" },
    { name: "private 172.16/12", url: "http://172.16.0.1/" },
    { name: "private 192.168/16", url: "http://192.168.1.1/" },
    { name: "broadcast", url: "http://255.255.255.255/" },
    { name: "IPv4 multicast", url: "http://224.0.0.1/" },
    { name: "IPv4 reserved 240/4", url: "http://240.0.0.1/" },
    { name: "IETF protocol assignments 192.0.0/24", url: "http://192.0.0.1/" },
    { name: "benchmarking 198.18/15", url: "http://198.18.0.1/" },
    { name: "IPv6 multicast", url: "http://[ff02::1]/" },
    { name: "IPv6 link-local", url: "http://[fe80::1]/" },
    { name: "IPv6 unique-local fd00::/8", url: "http://[fd00::1]/" },
    { name: "IPv6 unique-local fc00::/8", url: "http://[fc00::1]/" },
    { name: "IPv6 site-local", url: "http://[fec0::1]/" },
    { name: "name for loopback", url: at("loopback.test") },
    { name: "name for loopback, upper case with trailing dot", url: at("LOOPBACK.TEST.") },
    { name: "localhost", url: at("localhost") },
    { name: "name for 10/8", url: "http://private10.test/" },
    { name: "name for 172.16/12", url: "http://private172.test/" },
    { name: "name for 192.168/16", url: "http://private192.test/" },
    { name: "name for cloud metadata", url: "http://metadata.test/" },
    { name: "name for CGNAT", url: "http://cgnat.test/" },
    { name: "name for IPv6 loopback", url: at("v6loop.test") },
    { name: "name for unique-local", url: "http://ula.test/" },
    { name: "name for IPv6 link-local", url: "http://linklocal6.test/" },
    { name: "name for IPv4-mapped loopback", url: at("mapped.test") },
    { name: "name for NAT64 metadata", url: "http://nat64.test/" },
    { name: "name: public A first, loopback A second", url: at("public-then-private.test") },
    { name: "name: public AAAA first, loopback AAAA second", url: at("public-then-private6.test") },
    { name: "name: public A, loopback AAAA", url: at("public4-private6.test") },
    { name: "subdomain of an allowlisted host", url: at("sub.allowed.test") },
    { name: "allowlisted host as a prefix of another name", url: at("allowed.test.evil.test") },
    { name: "IP just below the allowlisted CIDR", url: at(CIDR_NEIGHBOURS[0] as string) },
    { name: "IP just above the allowlisted CIDR", url: at(CIDR_NEIGHBOURS[1] as string) },
    { name: "name for an IP just above the allowlisted CIDR", url: at("cidr-out.test") },
  ];
}
