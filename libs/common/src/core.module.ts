import { BullModule } from '@nestjs/bullmq';
import { Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { ThrottlerModule } from '@nestjs/throttler';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LoggerModule } from 'nestjs-pino';
import { AccessLogService } from './audit/access-log.service';
import { AuditSealer } from './audit/audit-sealer';
import { ApiKeyGuard } from './auth/api-key.guard';
import { Clock, SystemClock } from './clock/clock';
import type { AppConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { KeyRing } from './crypto/key-ring';
import { DatabaseConnector } from './database/database-connector';
import { dataSourceOptions } from './database/data-source';
import { HealthController, QueueLagHealthIndicator, RedisHealthIndicator } from './http/health.controller';
import { MetricsController } from './http/metrics.controller';
import { RateLimitGuard, rateLimitOptions } from './http/rate-limit.guard';
import { loggerParams } from './logging';
import { CatalogQueues } from './metrics/catalog-queues';
import { Metrics } from './metrics/metrics.service';
import { Workers } from './metrics/workers';
import { createRedis, REDIS, type RedisClient } from './redis';
import { RedisEvictionCheck } from './redis-eviction';

@Injectable()
class RedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: RedisClient) {}
  async onApplicationShutdown(): Promise<void> {
    // QUIT waits behind commands queued while Redis was away, which would hang shutdown: only ask a live server.
    if (this.redis.status !== 'ready') return this.redis.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export interface CoreOptions {
  app: string;
  clock?: Clock;
}

/** What every app shares: configuration, Postgres, Redis and BullMQ, logging, auth, health and metrics. */
@Module({})
export class CoreModule {
  static forRoot(config: AppConfig, options: CoreOptions): DynamicModule {
    const redis = createRedis(config.redis);
    return {
      module: CoreModule,
      global: true,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot(loggerParams(config, options.app)),
        // Connected by DatabaseConnector, which lets the app boot while Postgres is away.
        TypeOrmModule.forRoot({ ...dataSourceOptions(config.database.url), manualInitialization: true }),
        BullModule.forRoot({ connection: redis, prefix: config.queue.prefix }),
        TerminusModule.forRoot({ logger: false }),
        DiscoveryModule,
        ThrottlerModule.forRoot(rateLimitOptions(config)),
      ],
      controllers: [HealthController, MetricsController],
      providers: [
        { provide: REDIS, useValue: redis },
        { provide: KeyRing, useValue: new KeyRing(config.phi.keys, config.phi.indexKey) },
        { provide: Clock, useValue: options.clock ?? new SystemClock() },
        // Rate limits first (a caller over budget costs no key lookup), then the API key.
        { provide: APP_GUARD, useClass: RateLimitGuard },
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        RedisHealthIndicator,
        QueueLagHealthIndicator,
        CatalogQueues,
        Metrics,
        Workers,
        DatabaseConnector,
        RedisCloser,
        RedisEvictionCheck,
        AccessLogService,
        AuditSealer,
      ],
      exports: [REDIS, KeyRing, Clock, AccessLogService, TypeOrmModule, BullModule, Metrics, CatalogQueues],
    };
  }
}
