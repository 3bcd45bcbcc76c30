/**
 * The console's only way to the admin API: the key is kept in this tab's sessionStorage (never a cookie,
 * so no other site can make the browser send it) and sent as the Bearer header; signing out forgets it.
 */

const STORAGE = "escalation-shield.key";

export interface ApiError {
  status: number;
  code: string;
  msg: string;
  /** The field the message names, without `body.`/`query.` (`url`, `auth.credential`), when it names one. */
  field: string | undefined;
  referenceID: string | undefined;
}

export type Answer<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number; error: ApiError };

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE);
}

export function rememberKey(key: string): void {
  sessionStorage.setItem(STORAGE, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(STORAGE);
}

/** `body.auth.credential: required` → `auth.credential`. */
export function fieldOf(msg: string): string | undefined {
  const m = /^(?:body|query|params)\.([\w.[\]-]+):/.exec(msg);
  return m?.[1];
}

/** Dispatched on `window` when the stored key stops working (revoked mid-session): the app signs out. */
export const KEY_REFUSED = "escalation-shield:key-refused";

/**
 * Calls the admin API with the stored key (or `key`); never throws for an HTTP error, only for no network.
 * A 401 for the stored key forgets it and tells the app ({@link KEY_REFUSED}).
 */
export async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  key: string | null = storedKey(),
): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.ok) return { ok: true, status: res.status, data: json as T };
  if (res.status === 401 && key !== null && key === storedKey()) {
    forgetKey();
    dispatchEvent(new Event(KEY_REFUSED));
  }
  const e = (json ?? {}) as { code?: string; msg?: string; referenceID?: string };
  const msg = e.msg ?? `the server answered ${res.status}`;
  return {
    ok: false,
    status: res.status,
    error: {
      status: res.status,
      code: e.code ?? "ErrCodeInternal",
      msg,
      field: fieldOf(msg),
      referenceID: e.referenceID,
    },
  };
}

/** One page of a list, as every list of the API answers. */
export interface Paged<T> {
  data: T[];
  next_cursor: string | null;
  total: number;
  total_estimated?: boolean;
}

/** Who the stored key is. */
export interface Me {
  id: string;
  name: string;
  scope: "admin" | "read-only";
  organization: { id: string; slug: string };
}

/**
 * Every item of a configuration list, following `next_cursor` 100 at a time: an organization has tens of
 * destinations or automations, not thousands, and a page that showed only the first 100 would say nothing
 * of the rest.
 */
export async function everyItem<T>(path: string): Promise<Answer<T[]>> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const a: Answer<Paged<T>> = await call<Paged<T>>(
      "GET",
      `${path}${sep}per_page=100${cursor ? `&cursor=${cursor}` : ""}`,
    );
    if (!a.ok) return a;
    items.push(...a.data.data);
    cursor = a.data.next_cursor;
  } while (cursor);
  return { ok: true, status: 200, data: items };
}
