import Redis from 'ioredis';

export const REDIS = Symbol('REDIS');

/** BullMQ needs `maxRetriesPerRequest: null` on its connections; TLS follows from a rediss:// URL. */
export function createRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
}
