import { Controller, Get, Inject, Injectable } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
} from '@nestjs/terminus';
import { Public } from '../auth/api-key.guard';
import { CatalogQueues, within } from '../metrics/catalog-queues';
import { Workers } from '../metrics/workers';
import type { QueueName } from '../queue/queue.catalog';
import { REDIS, type RedisClient } from '../redis';

const PROBE_TIMEOUT_MS = 1000;
/** A job that waited this long for a worker means this app's workers are not keeping up: not ready. */
export const QUEUE_LAG_LIMIT_SECONDS = 300;

@Injectable()
export class RedisHealthIndicator {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    private readonly indicator: HealthIndicatorService,
  ) {}

  async ping(key: string) {
    const check = this.indicator.check(key);
    const answer = await within(this.redis.ping(), PROBE_TIMEOUT_MS);
    return answer ? check.up() : check.down({ message: 'Redis is unreachable' });
  }
}

/**
 * Queue lag of the queues this app consumes: down when the oldest job ready to run has waited longer than
 * {@link QUEUE_LAG_LIMIT_SECONDS} for a worker. Apps that consume no queue (consent-api) have nothing to lag.
 */
@Injectable()
export class QueueLagHealthIndicator {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    private readonly catalog: CatalogQueues,
    private readonly workers: Workers,
    private readonly indicator: HealthIndicatorService,
  ) {}

  async lag(key: string) {
    const check = this.indicator.check(key);
    const now = Date.now();
    const names = this.workers.queues() as QueueName[];
    const lags = await within(
      Promise.all(names.map((name) => this.oldestWaitingSeconds(name, now))),
      PROBE_TIMEOUT_MS,
    );
    if (!lags) return check.down({ message: 'queue state is unreadable' });
    const details = Object.fromEntries(
      names.map((name, index) => [name, { oldestWaitingSeconds: lags[index] }]),
    );
    const lagging = names.filter((_, index) => lags[index] > QUEUE_LAG_LIMIT_SECONDS);
    return lagging.length > 0
      ? check.down({
          ...details,
          message: `jobs waiting over ${QUEUE_LAG_LIMIT_SECONDS}s on ${lagging.join(', ')}`,
        })
      : check.up(details);
  }

  /** How long the oldest job ready to run (waiting, or delayed and past due) has been ready; 0 when none. */
  private async oldestWaitingSeconds(name: QueueName, now: number): Promise<number> {
    const queue = this.catalog.get(name);
    const [oldestWaiting] = await queue.getJobs(['wait'], 0, 0, true);
    // Due delayed jobs are promoted by workers: one past due and still delayed waits as much as a waiting one.
    const [, score] = await this.redis.zrange(queue.keys.delayed, 0, 0, 'WITHSCORES');
    const readySince = [
      oldestWaiting
        ? Math.max(oldestWaiting.timestamp + oldestWaiting.delay, oldestWaiting.processedOn ?? 0)
        : now,
      score ? Math.floor(Number(score) / 0x1000) : now,
    ];
    return Math.max(0, Math.round((now - Math.min(...readySince)) / 1000));
  }
}

/**
 * `/health`: 200 when Postgres and Redis answer, 503 naming the one that does not (the contract's check).
 * `/health/live`: the process is up and serving; no dependency is asked (a restart would not fix them).
 * `/health/ready`: `/health` plus the lag of the queues this app consumes.
 */
@ApiExcludeController()
@SkipThrottle()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly postgres: TypeOrmHealthIndicator,
    private readonly redis: RedisHealthIndicator,
    private readonly queues: QueueLagHealthIndicator,
  ) {}

  @Get()
  @Public()
  @HealthCheck()
  check() {
    return this.health.check(this.dependencies());
  }

  @Get('live')
  @Public()
  @HealthCheck()
  live() {
    return this.health.check([]);
  }

  @Get('ready')
  @Public()
  @HealthCheck()
  ready() {
    return this.health.check([...this.dependencies(), () => this.queues.lag('queues')]);
  }

  private dependencies() {
    return [
      () => this.postgres.pingCheck('postgres', { timeout: PROBE_TIMEOUT_MS }),
      () => this.redis.ping('redis'),
    ];
  }
}
