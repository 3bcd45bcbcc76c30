import { Redis } from "ioredis";

/**
 * Opens an ioredis connection. Workers need `maxRetriesPerRequest: null` (BullMQ's blocking commands
 * must wait out a reconnect); producers on the request path fail fast instead so the API can answer 503.
 */
export function openRedis(url: string, role: "worker" | "producer"): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: role === "worker" ? null : 2,
    enableOfflineQueue: role === "worker",
    lazyConnect: false,
  });
}
