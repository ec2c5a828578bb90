import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { REDIS, type RedisClient } from './redis';

/**
 * The policy Redis applies when it reaches `maxmemory`, or null when it will not say. Managed services often
 * disable CONFIG; INFO memory reports the same setting.
 */
export async function evictionPolicyOf(redis: RedisClient): Promise<string | null> {
  try {
    const reply = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as unknown;
    if (Array.isArray(reply) && typeof reply[1] === 'string') return reply[1];
  } catch {
    // CONFIG renamed or disabled: ask INFO below.
  }
  try {
    return policyFromInfo(await redis.info('memory'));
  } catch {
    return null;
  }
}

/** `maxmemory_policy` from the text of INFO memory. */
export function policyFromInfo(info: string): string | null {
  const match = /^maxmemory_policy:(\S+)/m.exec(info);
  return match ? match[1] : null;
}

/** What to tell the operator about a policy, or null when it is the safe one. */
export function evictionWarning(policy: string | null): string | null {
  if (policy === 'noeviction') return null;
  const found = policy === null ? 'could not be read' : `is ${policy}`;
  return (
    `Redis maxmemory-policy ${found}, not noeviction: when Redis fills up it may silently evict queued jobs ` +
    `and locks (delays, duplicates). Set maxmemory-policy noeviction.`
  );
}

/** Reports, once Redis first answers, a Redis that may evict queue data. Never stops the app. */
@Injectable()
export class RedisEvictionCheck implements OnApplicationBootstrap {
  private readonly logger = new Logger('Redis');

  constructor(@Inject(REDIS) private readonly redis: RedisClient) {}

  onApplicationBootstrap(): void {
    // Redis may be down at boot: commands would wait for it forever, so ask once it is ready, off the boot path.
    if (this.redis.status === 'ready') void this.check();
    else this.redis.once('ready', () => void this.check());
  }

  async check(): Promise<string | null> {
    const policy = await evictionPolicyOf(this.redis);
    const warning = evictionWarning(policy);
    if (warning) this.logger.error(warning);
    return policy;
  }
}
