import Redis, { Cluster } from 'ioredis';
import type { AppConfig } from './config/config';

export const REDIS = Symbol('REDIS');

/** One Redis, or a Redis Cluster (REDIS_CLUSTER=1): the apps use either through the same commands. */
export type RedisClient = Redis | Cluster;

/**
 * BullMQ needs `maxRetriesPerRequest: null` on its connections; TLS follows from a rediss:// URL. On a cluster
 * the URL names one node (its user, password and TLS apply to every node) and the client discovers the others.
 */
export function createRedis(redis: AppConfig['redis']): RedisClient {
  const options = { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false };
  if (!redis.cluster) return new Redis(redis.url, options);
  const url = new URL(redis.url);
  const tls = url.protocol === 'rediss:' ? { servername: url.hostname } : undefined;
  return new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
    enableReadyCheck: true,
    lazyConnect: false,
    redisOptions: {
      maxRetriesPerRequest: null,
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      tls,
    },
  });
}
