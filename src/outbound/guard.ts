import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { OutboundError } from "../errors.ts";
import { CachingResolver, type DnsCacheOptions, HostsFile, type Resolution } from "./resolve.ts";

/**
 * Which addresses the product may connect to on a customer's behalf: the one place for these rules.
 * Only globally routable unicast passes (for IPv6, inside 2000::/3); IPv4 embedded in IPv6 (mapped,
 * translated, IPv4-compatible, well-known NAT64) is judged by its IPv4 part; an address with a zone id
 * is link-scoped and never passes. Everything else (loopback, private, link-local with 169.254.169.254,
 * CGNAT, unique-local, multicast, unspecified, broadcast, reserved, 6to4, Teredo…) is refused.
 */
export interface AddressPolicy {
  /** Host names (exact, case-insensitive) or CIDRs / single addresses exempt from the block. */
  allowlist: string[];
  /** `ip`, `ip:port` or `[ipv6]:port` resolvers; empty means the system's. */
  dnsServers: string[];
  /**
   * The hosts file consulted before DNS, as nsswitch `hosts: files dns` does; also when `dnsServers`
   * is set, since that replaces only the name servers. Default `/etc/hosts`.
   */
  hostsFile?: string;
  /** Bounds of the resolution cache (TTL cap, size, family grace); defaults as in {@link DnsCacheOptions}. */
  dnsCache?: DnsCacheOptions;
}

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

export interface CompiledPolicy {
  hosts: Set<string>;
  cidrs: [Addr, number][];
  /** The c-ares resolver itself; `cancel()` it to end pending queries when done with the policy. */
  resolver: Resolver;
  hostsFile: HostsFile;
  dns: CachingResolver;
}

/**
 * c-ares timings: 1.5 s for the first try, at most 2 s for the second, so a silent resolver fails as
 * `dns` within the 5 s an attempt has instead of using it all up.
 */
const DNS_TIMEOUT_MS = 1500;
const DNS_MAX_TIMEOUT_MS = 2000;
const DNS_TRIES = 2;

const RANGE_NAMES: Record<string, string> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private",
  reserved: "reserved",
  uniqueLocal: "unique-local",
  deprecatedSiteLocal: "site-local",
  rfc6052: "local-use NAT64",
  "6to4": "6to4",
  teredo: "Teredo",
  discard: "discard-only",
};

const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parse("2000::");
const NAT64_WELL_KNOWN = ipaddr.IPv6.parse("64:ff9b::");

/** The IPv4 address an IPv6 one stands for, when it embeds one that a network may route to. */
function embeddedV4(a: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const range = a.range();
  const p = a.parts;
  const compatible = p.slice(0, 6).every((x) => x === 0) && (p[6] !== 0 || (p[7] ?? 0) > 1);
  if (
    range === "ipv4Mapped" ||
    range === "rfc6145" ||
    a.match(NAT64_WELL_KNOWN, 96) ||
    // IPv4-compatible ::a.b.c.d: deprecated, still routed by some stacks.
    compatible
  ) {
    return new ipaddr.IPv4(a.toByteArray().slice(12) as [number, number, number, number]);
  }
  return undefined;
}

function classify(a: Addr): string | undefined {
  if (a.kind() === "ipv4") {
    const range = a.range();
    return range === "unicast" ? undefined : (RANGE_NAMES[range] ?? `reserved (${range})`);
  }
  const v6 = a as ipaddr.IPv6;
  const v4 = embeddedV4(v6);
  if (v4) {
    const why = classify(v4);
    return why ? `${why}, IPv4 ${v4.toString()} embedded` : undefined;
  }
  const range = v6.range();
  if (range !== "unicast") return RANGE_NAMES[range] ?? `reserved (${range})`;
  if (!v6.match(GLOBAL_UNICAST_V6, 3)) return "not global unicast";
  return undefined;
}

/**
 * Why an address is refused (`"loopback"`, `"link-local"`, …), or `undefined` when it is a public unicast
 * address. Takes any form Node or a URL parser would connect to: dotted, decimal, octal or hex IPv4,
 * IPv6 with or without brackets or a zone id.
 */
export function blockedReason(address: string): string | undefined {
  const bare = stripBrackets(address);
  if (bare.includes("%")) return "scoped (zone id)";
  let a: Addr;
  try {
    a = ipaddr.parse(bare);
  } catch {
    return "not an IP address";
  }
  return classify(a);
}

function parseCidr(entry: string): [Addr, number] {
  const slash = entry.indexOf("/");
  if (slash < 0) {
    const a = ipaddr.parse(stripBrackets(entry));
    return [a, a.kind() === "ipv4" ? 32 : 128];
  }
  return ipaddr.parseCIDR(`${stripBrackets(entry.slice(0, slash))}${entry.slice(slash)}`);
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/**
 * Why a DESTINATION_ALLOWLIST entry is unusable, or `undefined`. An entry is a host name (matched exactly,
 * case-insensitively), an IP address, or a CIDR such as `10.1.0.0/16` or `fd00::/8`. Strict forms only
 * (no `0x7f.1`): an entry must mean one thing to whoever reads the configuration.
 */
export function allowlistEntryProblem(entry: string): string | undefined {
  const slash = entry.indexOf("/");
  if (entry.includes("://")) return "is a URL; give a host name, an IP address or a CIDR";
  if (slash >= 0) {
    const address = stripBrackets(entry.slice(0, slash));
    const bits = entry.slice(slash + 1);
    const family = isIP(address);
    if (family === 0) return "is not a CIDR: the part before / is not an IP address";
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) {
      return `is not a CIDR: the prefix length must be 0 to ${family === 4 ? 32 : 128}`;
    }
    return undefined;
  }
  if (isIP(stripBrackets(entry)) !== 0) return undefined;
  const host = entry.toLowerCase().replace(/\.$/, "");
  const labels = host.split(".");
  if (host.length > 253 || !labels.every((l) => LABEL.test(l))) {
    return "is not a host name, an IP address or a CIDR";
  }
  // URL parsers read a name ending in a number as an IPv4 address, so such an entry would never match.
  if (/^(0x[0-9a-f]*|\d+)$/.test(labels.at(-1) ?? "")) return "looks like an IP address but is not one";
  return undefined;
}

/** Why a DNS_SERVERS entry is unusable, or `undefined`. Entries are `ip`, `ipv4:port` or `[ipv6]:port`. */
export function dnsServerProblem(entry: string): string | undefined {
  let host = entry;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1] as string;
    port = bracketed[2];
    if (isIP(host) !== 6) return "is not an IPv6 address in brackets";
  } else if (isIP(entry) === 0) {
    const colon = entry.lastIndexOf(":");
    host = entry.slice(0, colon);
    port = entry.slice(colon + 1);
    if (colon < 0 || isIP(host) !== 4) return "must be an IP address, ipv4:port or [ipv6]:port";
  }
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    return "has a port that is not 1 to 65535";
  }
  return undefined;
}

/** Builds the policy's matchers and resolver. Entries must pass the checks config.ts makes at start-up. */
export function compilePolicy(policy: AddressPolicy): CompiledPolicy {
  const hosts = new Set<string>();
  const cidrs: [Addr, number][] = [];
  for (const entry of policy.allowlist) {
    if (entry.includes("/") || isIP(stripBrackets(entry)) !== 0) cidrs.push(parseCidr(entry));
    else hosts.add(normalizeHost(entry));
  }
  const resolver = new Resolver({
    timeout: DNS_TIMEOUT_MS,
    tries: DNS_TRIES,
    maxTimeout: DNS_MAX_TIMEOUT_MS,
  });
  if (policy.dnsServers.length > 0) resolver.setServers(policy.dnsServers);
  return {
    hosts,
    cidrs,
    resolver,
    hostsFile: new HostsFile(policy.hostsFile ?? "/etc/hosts"),
    dns: new CachingResolver(resolver, policy.dnsCache),
  };
}

function inCidrs(address: string, cidrs: [Addr, number][]): boolean {
  if (address.includes("%")) return false;
  const a = ipaddr.process(address);
  return cidrs.some(([net, bits]) => a.kind() === net.kind() && a.match(net, bits));
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Lower case, no brackets, no trailing dot: how host names are compared with the allowlist. */
function normalizeHost(host: string): string {
  return stripBrackets(host).toLowerCase().replace(/\.$/, "");
}

/** Why `address` may not be connected to under `policy`, or `undefined` when it may. */
function refusal(policy: CompiledPolicy, address: string): string | undefined {
  if (inCidrs(address, policy.cidrs)) return undefined;
  return blockedReason(address);
}

/**
 * Resolves `hostname` as the OS would, hosts file first, then DNS with c-ares (not the thread-pool
 * `dns.lookup`, which stalls under load and cannot be cancelled), and returns the addresses to connect
 * to, in the order to try them (IPv4 first). Every resolved address must pass, so a name that answers
 * with a public and a private address is refused whole, before any connect; this holds for cached
 * answers too, which are checked again at every call. A host named in the allowlist is exempt; an
 * address inside an allowlisted CIDR passes. A hosts-file entry gets no exemption for being local.
 * Throws {@link OutboundError} `blocked` or `dns`.
 */
export async function resolveCheckedAll(policy: CompiledPolicy, hostname: string): Promise<string[]> {
  const host = normalizeHost(hostname);
  if (isIP(host) !== 0 || host.includes("%")) {
    const reason = refusal(policy, host);
    if (reason) throw new OutboundError("blocked", `${host} is not allowed (${reason})`);
    return [host];
  }
  const resolution: Resolution = policy.hostsFile.lookup(host) ?? (await policy.dns.resolve(host));
  if (policy.hosts.has(host)) return resolution.addresses;
  const where = resolution.source === "hosts" ? ` in ${policy.hostsFile.path}` : "";
  for (const address of resolution.addresses) {
    const reason = refusal(policy, address);
    if (reason) {
      throw new OutboundError(
        "blocked",
        `${host} resolves to ${address}${where}, which is not allowed (${reason})`,
      );
    }
  }
  return resolution.addresses;
}

/** {@link resolveCheckedAll}'s first address: the one a single connect would use. */
export async function resolveChecked(policy: CompiledPolicy, hostname: string): Promise<string> {
  return (await resolveCheckedAll(policy, hostname))[0] as string;
}

/**
 * The URL an outbound request may be made to: absolute, http or https, no user name or password.
 * Throws {@link OutboundError} `blocked` otherwise, before anything is resolved or connected.
 */
export function outboundUrl(raw: string): URL {
  const u = URL.parse(raw);
  if (u === null) throw new OutboundError("blocked", "the destination is not a valid URL");
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new OutboundError("blocked", `the destination's scheme ${u.protocol} is not http or https`);
  }
  if (u.username || u.password) throw new OutboundError("blocked", "the destination URL carries credentials");
  return u;
}

/**
 * Why a destination URL can never be used, checked when it is saved; `undefined` when it may be. A host
 * name is not resolved here (its addresses may change): every attempt resolves and checks it again.
 */
export function destinationUrlProblem(
  raw: string,
  options: { allowHttp: boolean; policy: CompiledPolicy },
): string | undefined {
  const u = URL.parse(raw);
  if (u === null) return "must be an absolute URL";
  if (u.protocol !== "https:" && !(options.allowHttp && u.protocol === "http:")) {
    return options.allowHttp ? "must start with https:// or http://" : "must start with https://";
  }
  if (u.username || u.password) return "must not carry a user name or password";
  const host = normalizeHost(u.hostname);
  if (isIP(host) !== 0) {
    const reason = refusal(options.policy, host);
    if (reason) return `points at an address that is never allowed (${reason})`;
  }
  return undefined;
}
