import Redis, { Cluster } from 'ioredis';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../database/data-source';
import { createRedis } from '../redis';
import { loadConfig } from './config';

/** 164.312(e)(1), (e)(2)(ii): TLS to Postgres and Redis follows from the URLs an operator configures. */
describe('transmission security: TLS from the configured URLs', () => {
  it('accepts rediss:// and asks Redis for TLS', () => {
    const config = loadConfig({ REDIS_URL: 'rediss://:secret@127.0.0.1:6379' });
    expect(config.redis.url).toBe('rediss://:secret@127.0.0.1:6379');
    expect(tlsOf({ url: config.redis.url, cluster: false })).toBeTruthy();
    expect(tlsOf({ url: 'redis://127.0.0.1:6379', cluster: false })).toBeFalsy();
    // On a cluster every node is reached over TLS.
    expect(tlsOf({ url: config.redis.url, cluster: true })).toBeTruthy();
    expect(tlsOf({ url: 'redis://127.0.0.1:6379', cluster: true })).toBeFalsy();
  });

  it('accepts a Postgres URL with sslmode and connects over TLS only', async () => {
    // The local test server has no TLS: a connection that insists on it is refused, one that does not succeeds.
    const config = loadConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=verify-full',
    });
    await expect(new DataSource(dataSourceOptions(config.database.url, 1)).initialize()).rejects.toThrow(
      /does not support SSL/,
    );
    const plain = await new DataSource(
      dataSourceOptions('postgres://postgres@127.0.0.1:5432/postgres', 1),
    ).initialize();
    await plain.destroy();
  });
});

function tlsOf(config: { url: string; cluster: boolean }): unknown {
  const redis = createRedis(config);
  redis.on('error', () => undefined);
  const tls =
    redis instanceof Cluster
      ? redis.options.redisOptions?.tls
      : redis instanceof Redis
        ? redis.options.tls
        : undefined;
  redis.disconnect();
  return tls;
}
