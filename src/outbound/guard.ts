import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { OutboundError } from "../errors.ts";

/**
 * Which addresses the product may connect to on a customer's behalf. Only globally routable unicast
 * passes; IPv4 embedded in IPv6 (mapped, translated, NAT64) is judged by its IPv4 part.
 */
export interface AddressPolicy {
  /** Host names (exact, case-insensitive) or CIDRs / single addresses exempt from the block. */
  allowlist: string[];
  /** `ip[:port]` resolvers; empty means the system's. */
  dnsServers: string[];
}

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

interface CompiledPolicy {
  hosts: Set<string>;
  cidrs: [Addr, number][];
  resolver: Resolver;
}

/** Resolution stops after this long (c-ares timeout per try × tries). */
const DNS_TIMEOUT_MS = 2000;
const DNS_TRIES = 2;

export function compilePolicy(policy: AddressPolicy): CompiledPolicy {
  const hosts = new Set<string>();
  const cidrs: [Addr, number][] = [];
  for (const entry of policy.allowlist) {
    if (entry.includes("/")) cidrs.push(ipaddr.parseCIDR(entry));
    else if (ipaddr.isValid(entry)) {
      const a = ipaddr.parse(entry);
      cidrs.push([a, a.kind() === "ipv4" ? 32 : 128]);
    } else hosts.add(entry.toLowerCase());
  }
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (policy.dnsServers.length > 0) resolver.setServers(policy.dnsServers);
  return { hosts, cidrs, resolver };
}

function embeddedV4(a: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const range = a.range();
  if (range === "ipv4Mapped" || range === "rfc6145" || range === "rfc6052") {
    const b = a.toByteArray();
    return new ipaddr.IPv4(b.slice(12) as [number, number, number, number]);
  }
  // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks).
  const parts = a.parts;
  if (parts.slice(0, 6).every((p) => p === 0) && (parts[6] !== 0 || (parts[7] ?? 0) > 1)) {
    const b = a.toByteArray();
    return new ipaddr.IPv4(b.slice(12) as [number, number, number, number]);
  }
  return undefined;
}

/** Why an address is refused, or `undefined` when it is a public unicast address. */
export function blockedReason(address: string): string | undefined {
  let a: Addr;
  try {
    a = ipaddr.parse(address.replace(/%.*$/, ""));
  } catch {
    return "not an IP address";
  }
  if (a.kind() === "ipv6") {
    const v4 = embeddedV4(a as ipaddr.IPv6);
    if (v4) return blockedReason(v4.toString());
  }
  const range = a.range();
  return range === "unicast" ? undefined : range;
}

function inCidrs(address: string, cidrs: [Addr, number][]): boolean {
  const a = ipaddr.process(address.replace(/%.*$/, ""));
  return cidrs.some(([net, bits]) => a.kind() === net.kind() && a.match(net, bits));
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Resolves `hostname` with c-ares (not the thread-pool `dns.lookup`, which stalls under load and
 * cannot be cancelled) and returns the one address to connect to. Every resolved address must pass,
 * so a name that answers with a public and a private address is refused whole.
 */
export async function resolveChecked(policy: CompiledPolicy, hostname: string): Promise<string> {
  const host = stripBrackets(hostname).toLowerCase();
  if (policy.hosts.has(host)) {
    if (isIP(host)) return host;
    return (await resolveAll(policy.resolver, host))[0] as string;
  }
  const addresses = isIP(host) ? [host] : await resolveAll(policy.resolver, host);
  for (const address of addresses) {
    if (inCidrs(address, policy.cidrs)) continue;
    const reason = blockedReason(address);
    if (reason) {
      throw new OutboundError("blocked", `${host} resolves to ${address} (${reason}), which is not allowed`);
    }
  }
  return addresses[0] as string;
}

async function resolveAll(resolver: Resolver, host: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const addresses = [
    ...(v4.status === "fulfilled" ? v4.value : []),
    ...(v6.status === "fulfilled" ? v6.value : []),
  ];
  if (addresses.length === 0) {
    const err = v4.status === "rejected" ? v4.reason : v6.status === "rejected" ? v6.reason : undefined;
    throw new OutboundError(
      "dns",
      `could not resolve ${host}: ${(err as Error | undefined)?.message ?? "no address"}`,
      {
        cause: err,
      },
    );
  }
  return addresses;
}

/** Why a destination URL can never be used, checked when it is saved; `undefined` when it may be. */
export function destinationUrlProblem(
  raw: string,
  options: { allowHttp: boolean; policy: CompiledPolicy },
): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "must be an absolute URL";
  }
  if (u.protocol !== "https:" && !(options.allowHttp && u.protocol === "http:")) {
    return options.allowHttp ? "must start with https:// or http://" : "must start with https://";
  }
  if (u.username || u.password) return "must not carry a user name or password";
  const host = stripBrackets(u.hostname).toLowerCase();
  if (options.policy.hosts.has(host)) return undefined;
  if (isIP(host) && !inCidrs(host, options.policy.cidrs)) {
    const reason = blockedReason(host);
    if (reason) return `points at a ${reason} address, which is never allowed`;
  }
  return undefined;
}
