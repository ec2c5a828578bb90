import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { REDIS, type RedisClient } from '@rxnotify/common/redis';

/**
 * A pharmacy's send rate (messages a second), shared by every dispatcher replica through one Redis counter
 * per pharmacy and second. A send over the rate waits for the next second, keeping its claim.
 */
@Injectable()
export class SendRateLimiter {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async acquire(pharmacyId: string, perSecond: number): Promise<void> {
    for (;;) {
      const second = Math.floor(Date.now() / 1000);
      const key = `${this.config.queue.prefix}:rate:${pharmacyId}:${second}`;
      const [[, count]] = (await this.redis.multi().incr(key).expire(key, 2).exec()) as [
        [Error | null, number],
        [Error | null, number],
      ];
      if (count <= perSecond) return;
      // Wait for the next second, spread out so waiting sends do not stampede together.
      await new Promise((resolve) =>
        setTimeout(resolve, (second + 1) * 1000 - Date.now() + Math.random() * 50),
      );
    }
  }
}
