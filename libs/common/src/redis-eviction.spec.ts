import { Logger } from '@nestjs/common';
import Redis from 'ioredis';
import { evictionPolicyOf, evictionWarning, policyFromInfo, RedisEvictionCheck } from './redis-eviction';

const REDIS_URL = 'redis://127.0.0.1:6379';

/** A real client on which CONFIG is refused, as on managed Redis services that disable or rename it. */
function withoutConfig(redis: Redis): Redis {
  const call = redis.call.bind(redis) as (...args: string[]) => Promise<unknown>;
  redis.call = ((command: string, ...args: string[]) =>
    command.toUpperCase() === 'CONFIG'
      ? Promise.reject(new Error("ERR unknown command 'CONFIG'"))
      : call(command, ...args)) as Redis['call'];
  return redis;
}

describe('Redis maxmemory-policy at boot', () => {
  let redis: Redis;
  let live: string;
  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    const reply = await redis.config('GET', 'maxmemory-policy');
    live = String((reply as string[])[1]);
  });
  afterAll(() => redis.quit());

  it('warns about every policy but noeviction, naming the policy and the fix', () => {
    expect(evictionWarning('noeviction')).toBeNull();
    for (const policy of ['allkeys-lru', 'volatile-lru', 'allkeys-random', 'volatile-ttl']) {
      const warning = evictionWarning(policy);
      expect(warning).toContain(`maxmemory-policy is ${policy}`);
      expect(warning).toContain('evict queued jobs');
      expect(warning).toContain('noeviction');
    }
    expect(evictionWarning(null)).toContain('could not be read');
  });

  it('reads the live policy from the running Redis', async () => {
    expect(await evictionPolicyOf(redis)).toBe(live);
  });

  it('reads it from INFO memory when CONFIG is disabled', async () => {
    expect(policyFromInfo(await redis.info('memory'))).toBe(live);
    const limited = withoutConfig(new Redis(REDIS_URL));
    try {
      expect(await evictionPolicyOf(limited)).toBe(live);
    } finally {
      await limited.quit();
    }
  });

  it('logs one error line when the policy cannot be confirmed, and none for noeviction; never throws', async () => {
    const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    try {
      const blind = withoutConfig(new Redis(REDIS_URL));
      blind.info = (() => Promise.reject(new Error('NOPERM'))) as Redis['info'];
      try {
        expect(await new RedisEvictionCheck(blind).check()).toBeNull();
      } finally {
        await blind.quit();
      }
      expect(error).toHaveBeenCalledTimes(1);
      expect(String(error.mock.calls[0][0])).toContain('maxmemory-policy could not be read');

      error.mockClear();
      expect(await new RedisEvictionCheck(redis).check()).toBe(live);
      expect(error).toHaveBeenCalledTimes(live === 'noeviction' ? 0 : 1);
    } finally {
      error.mockRestore();
    }
  });
});
