import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config.module';
import { QueueName } from '../queue/queue.catalog';
import { REDIS, type RedisClient } from '../redis';

/**
 * A read handle on every queue of the catalog (metrics, readiness, the dashboard), on the app's Redis
 * connection and queue prefix. Derived from `QueueName`, so a new queue shows up everywhere by itself.
 */
@Injectable()
export class CatalogQueues implements OnApplicationShutdown {
  readonly all: ReadonlyMap<QueueName, Queue>;

  constructor(@Inject(REDIS) redis: RedisClient, @Inject(APP_CONFIG) config: AppConfig) {
    this.all = new Map(
      Object.values(QueueName).map((name) => {
        const queue = new Queue(name, { connection: redis, prefix: config.queue.prefix });
        // Read handles only: a connection error (Redis away, the app closing) surfaces on /health, not as a crash.
        queue.on('error', () => undefined);
        return [name, queue];
      }),
    );
  }

  get(name: QueueName): Queue {
    const queue = this.all.get(name);
    if (!queue) throw new Error(`queue ${name} is not in the catalog`);
    return queue;
  }

  async onApplicationShutdown(): Promise<void> {
    // The handles share the app's connection: closing them leaves it open for its owner (CoreModule) to close.
    await Promise.all([...this.all.values()].map((queue) => queue.close().catch(() => undefined)));
  }
}

/** Resolves with `work`'s value, or null when it fails or takes longer than `ms` (Redis down must not hang a probe). */
export async function within<T>(work: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([work.catch(() => null), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
