import type { Resolver } from "node:dns/promises";
import { readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { OutboundError } from "../errors.ts";

/** Where a name's addresses came from; the hosts file is named in refusals so admins know where to look. */
export type AddressSource = "hosts" | "dns";

export interface Resolution {
  /** IPv4 addresses first, then IPv6, each in the order the source gave them. */
  addresses: string[];
  source: AddressSource;
}

/** The hosts file is looked at (one stat) at most this often, in ms. */
const HOSTS_RECHECK_MS = 1000;

/**
 * A hosts file (`/etc/hosts` format) read as glibc's `files` source reads it: `#` starts a comment,
 * each line is an address followed by one or more names (canonical name and aliases alike), names match
 * case-insensitively, a name on several lines gets every line's addresses, and a line whose address is
 * not a strict IPv4 or IPv6 address is skipped. A missing or unreadable file lists nothing, so names go
 * to DNS, as they would with the OS.
 *
 * The file is stat'ed at most once a second and parsed again only when its inode, size or mtime changed,
 * so edits (and Docker's or Kubernetes' rewrites, which replace the file) are seen within a second. Both
 * are synchronous on purpose: a stat of a local file takes microseconds, and the libuv thread pool that
 * `fs.promises` would queue behind is the one that stalls `dns.lookup` under load.
 */
export class HostsFile {
  readonly path: string;
  private entries = new Map<string, { v4: string[]; v6: string[] }>();
  private version = "";
  private checkedAt = Number.NEGATIVE_INFINITY;

  constructor(path: string) {
    this.path = path;
  }

  /** The addresses the file lists for `host` (lower case, no trailing dot), or `undefined` if none. */
  lookup(host: string): Resolution | undefined {
    this.refresh();
    const entry = this.entries.get(host);
    if (!entry) return undefined;
    return { addresses: [...entry.v4, ...entry.v6], source: "hosts" };
  }

  private refresh(): void {
    const now = performance.now();
    if (now - this.checkedAt < HOSTS_RECHECK_MS) return;
    this.checkedAt = now;
    let version = "missing";
    let text = "";
    try {
      const st = statSync(this.path, { throwIfNoEntry: false });
      if (st) {
        version = `${st.ino}:${st.size}:${st.mtimeMs}`;
        if (version === this.version) return;
        text = readFileSync(this.path, "utf8");
      }
    } catch {
      // Unreadable (permissions, a directory): the OS would skip the file as well.
      version = "unreadable";
    }
    if (version === this.version) return;
    this.version = version;
    this.entries = parseHostsFile(text);
  }
}

/** Parses hosts-file text into lower-case name → addresses, in file order, without duplicates. */
export function parseHostsFile(text: string): Map<string, { v4: string[]; v6: string[] }> {
  const entries = new Map<string, { v4: string[]; v6: string[] }>();
  for (const raw of text.split(/\r?\n/)) {
    const hash = raw.indexOf("#");
    const fields = (hash >= 0 ? raw.slice(0, hash) : raw).trim().split(/\s+/);
    const [address, ...names] = fields;
    if (!address || names.length === 0) continue;
    // A zone id (fe80::1%eth0) is kept: the policy refuses scoped addresses with a reason that says so.
    const family = isIP(address.split("%")[0] as string);
    if (family === 0) continue;
    for (const name of names) {
      const key = name.toLowerCase().replace(/\.$/, "");
      let entry = entries.get(key);
      if (!entry) {
        entry = { v4: [], v6: [] };
        entries.set(key, entry);
      }
      const list = family === 4 ? entry.v4 : entry.v6;
      if (!list.includes(address)) list.push(address);
    }
  }
  return entries;
}

/** Tuning of {@link CachingResolver}; every field has a default. */
export interface DnsCacheOptions {
  /** Longest time an answer is reused, in ms, whatever its TTL says. Default 60 000. */
  maxTtlMs?: number;
  /** Most names kept; the least recently used goes first. Default 1 000. */
  maxEntries?: number;
  /**
   * How long to wait for the other address family once one has answered with addresses, in ms
   * (Happy Eyeballs' resolution delay, RFC 8305 §3). Default 50.
   */
  familyGraceMs?: number;
}

interface CacheEntry {
  addresses: { v4: string[]; v6: string[] };
  /** performance.now() time after which the entry is not used. */
  expiresAt: number;
}

type Family = "v4" | "v6";

/**
 * A c-ares resolver with a small cache in front. Answers are kept for their records' TTL, at most
 * `maxTtlMs`, for at most `maxEntries` names; concurrent look-ups of one name share one query pair.
 * Only raw addresses are cached: callers check them against their policy every time.
 *
 * A and AAAA are asked together and the look-up ends `familyGraceMs` after the first family that
 * answers with addresses, so a resolver that drops AAAA (or A) queries costs a few ms rather than
 * c-ares' whole timeout. An answer arriving after that is added to the cached entry, so the next
 * look-up sees (and checks) it. Failures are not cached: the next attempt asks again.
 */
export class CachingResolver {
  readonly resolver: Resolver;
  private readonly maxTtlMs: number;
  private readonly maxEntries: number;
  private readonly graceMs: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<Resolution>>();

  constructor(resolver: Resolver, options: DnsCacheOptions = {}) {
    this.resolver = resolver;
    this.maxTtlMs = options.maxTtlMs ?? 60_000;
    this.maxEntries = options.maxEntries ?? 1000;
    this.graceMs = options.familyGraceMs ?? 50;
  }

  /**
   * The addresses DNS gives for `host` (lower case, not an IP literal), IPv4 first.
   * Throws {@link OutboundError} `dns` when neither family yields an address; `cause` is c-ares' error.
   */
  resolve(host: string): Promise<Resolution> {
    const hit = this.cache.get(host);
    if (hit && hit.expiresAt > performance.now()) {
      // Re-inserting keeps the Map's order least recently used first.
      this.cache.delete(host);
      this.cache.set(host, hit);
      return Promise.resolve({ addresses: [...hit.addresses.v4, ...hit.addresses.v6], source: "dns" });
    }
    if (hit) this.cache.delete(host);
    let pending = this.inFlight.get(host);
    if (!pending) {
      pending = this.query(host).finally(() => this.inFlight.delete(host));
      this.inFlight.set(host, pending);
    }
    return pending;
  }

  private query(host: string): Promise<Resolution> {
    return new Promise<Resolution>((resolve, reject) => {
      const got: Partial<Record<Family, string[]>> = {};
      const errors: Partial<Record<Family, unknown>> = {};
      let ttlMs = this.maxTtlMs;
      let settled = false;
      let entry: CacheEntry | undefined;
      let grace: NodeJS.Timeout | undefined;

      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(grace);
        const addresses = { v4: got.v4 ?? [], v6: got.v6 ?? [] };
        if (addresses.v4.length + addresses.v6.length === 0) {
          const err = errors.v4 ?? errors.v6;
          // Both questions answered with no address at all reads as ENODATA, as the system resolver says it.
          const code = (err as { code?: string } | undefined)?.code ?? "ENODATA";
          reject(new OutboundError("dns", `could not resolve ${host}: ${code}`, { cause: err, code }));
          return;
        }
        if (ttlMs > 0) {
          entry = { addresses, expiresAt: performance.now() + ttlMs };
          this.remember(host, entry);
        }
        resolve({ addresses: [...addresses.v4, ...addresses.v6], source: "dns" });
      };

      const answered = (family: Family, records: { address: string; ttl: number }[]) => {
        if (records.length > 0) ttlMs = Math.min(ttlMs, ...records.map((r) => r.ttl * 1000));
        const list = records.map((r) => r.address);
        if (settled) {
          // Late family: merge into the entry this look-up made, if it is still the cached one.
          if (entry && this.cache.get(host) === entry && list.length > 0) {
            entry.addresses[family] = list;
            entry.expiresAt = Math.min(entry.expiresAt, performance.now() + ttlMs);
          }
          return;
        }
        got[family] = list;
        const other: Family = family === "v4" ? "v6" : "v4";
        if (got[other] !== undefined || errors[other] !== undefined) return finish();
        if (list.length > 0 && grace === undefined) {
          // setImmediate after the timer: an answer that arrived while the loop was busy is read first.
          grace = setTimeout(() => setImmediate(finish), this.graceMs);
        }
      };

      const failed = (family: Family, err: unknown) => {
        if (settled) return;
        errors[family] = err;
        const other: Family = family === "v4" ? "v6" : "v4";
        // NXDOMAIN is about the name, not the type: the other family cannot have addresses either.
        if ((err as { code?: string }).code === "ENOTFOUND" && got[other] === undefined) return finish();
        if (got[other] !== undefined || errors[other] !== undefined) finish();
      };

      this.resolver.resolve4(host, { ttl: true }).then(
        (r) => answered("v4", r),
        (e: unknown) => failed("v4", e),
      );
      this.resolver.resolve6(host, { ttl: true }).then(
        (r) => answered("v6", r),
        (e: unknown) => failed("v6", e),
      );
    });
  }

  private remember(host: string, entry: CacheEntry): void {
    this.cache.delete(host);
    this.cache.set(host, entry);
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }
}
