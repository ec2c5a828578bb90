import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { CHAINS, sealChain } from './audit-chain';

/** How often each app seals the audit rows committed since. */
export const SEAL_INTERVAL_MS = 200;

/**
 * Seals the audit chains every {@link SEAL_INTERVAL_MS}: each app runs one, and whichever gets a chain's head
 * lock seals it (the others skip it). A round that fails (Postgres away) is logged and the next one retries:
 * the rows wait, written and durable, for their chain columns.
 */
@Injectable()
export class AuditSealer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AuditSealer.name);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private failing = false;

  constructor(@InjectDataSource() private readonly db: DataSource) {}

  onApplicationBootstrap(): void {
    let busy = false;
    this.timer = setInterval(() => {
      // A round still running (a big backlog) is not queued behind: the next tick looks again.
      if (busy) return;
      busy = true;
      this.running = this.sealAll().finally(() => (busy = false));
    }, SEAL_INTERVAL_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private async sealAll(): Promise<void> {
    if (!this.db.isInitialized) return;
    try {
      for (const chain of CHAINS) await sealChain(this.db, chain);
      if (this.failing) this.logger.log('audit sealing resumed');
      this.failing = false;
    } catch (error) {
      if (!this.failing)
        this.logger.warn(
          `audit sealing failed, will retry: ${error instanceof Error ? error.message : 'unknown'}`,
        );
      this.failing = true;
    }
  }
}
