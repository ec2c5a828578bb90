import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

/** How often a process that booted without Postgres tries to connect again. */
export const DATABASE_RETRY_MS = 2_000;

/**
 * Connects the data source at boot without making Postgres a condition of booting: when it is unreachable the
 * app starts anyway (`/health` answers 503 naming postgres, requests that need it 503, jobs retry) and connects
 * in the background as soon as Postgres answers.
 */
@Injectable()
export class DatabaseConnector implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async onModuleInit(): Promise<void> {
    if (await this.connect()) return;
    this.logger.error(`Postgres is unreachable at boot; retrying every ${DATABASE_RETRY_MS} ms`);
    const retry = async () => {
      if (this.stopped) return;
      if (await this.connect()) {
        this.logger.log('Postgres connected');
        return;
      }
      this.timer = setTimeout(() => void retry(), DATABASE_RETRY_MS);
      this.timer.unref();
    };
    this.timer = setTimeout(() => void retry(), DATABASE_RETRY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async connect(): Promise<boolean> {
    if (this.db.isInitialized) return true;
    try {
      await this.db.initialize();
      return true;
    } catch {
      // A failed initialize leaves the data source uninitialized: the next try starts afresh.
      if (this.db.isInitialized) await this.db.destroy().catch(() => undefined);
      return false;
    }
  }
}
