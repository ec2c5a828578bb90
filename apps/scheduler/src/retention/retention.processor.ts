import { InjectDataSource } from '@nestjs/typeorm';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { Clock } from '@rxnotify/common/clock/clock';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { JOB_OPTIONS, JobName, QueueName } from '@rxnotify/common/queue/queue.catalog';
import { purgeMessageBodiesExclusively, type PurgeReport } from '@rxnotify/common/retention/retention';
import { closeWorkerWithin } from '@rxnotify/common/shutdown/grace';

const SCHEDULER_ID = 'daily-message-body-purge';
export const PURGE_EVERY_MS = 24 * 3600_000;
/** The schedule lives in Redis; asserting it again every minute restores it after Redis lost its data. */
const REASSERT_MS = 60_000;

/**
 * Erases message bodies older than MESSAGE_BODY_RETENTION_DAYS once a day. The job scheduler is shared by replicas
 * (one id), so each day yields one job, and the purge takes an advisory lock besides (the CLI may run it too).
 */
@Processor(QueueName.Retention, { concurrency: 1 })
export class RetentionProcessor
  extends WorkerHost
  implements OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger = new Logger(RetentionProcessor.name);
  private timer: NodeJS.Timeout | null = null;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectQueue(QueueName.Retention) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    // Not awaited: with Redis away the app must still boot; the timer retries.
    void this.assertSchedule().catch((error: unknown) => this.warn(error));
    this.timer = setInterval(
      () => void this.assertSchedule().catch((error: unknown) => this.warn(error)),
      REASSERT_MS,
    );
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await closeWorkerWithin(this.worker);
  }

  private warn(error: unknown): void {
    this.logger.warn(
      `purge schedule not asserted (will retry): ${error instanceof Error ? error.message : 'unknown error'}`,
    );
  }

  private async assertSchedule(): Promise<void> {
    await this.queue.upsertJobScheduler(
      SCHEDULER_ID,
      { every: PURGE_EVERY_MS },
      { name: JobName.PurgeMessageBodies, data: {}, opts: JOB_OPTIONS[JobName.PurgeMessageBodies] },
    );
  }

  /** The report (a count and a date) is the job's stored return value: no PHI. */
  async process(job: Job): Promise<PurgeReport | { skipped: 'another purge is running' }> {
    if (job.name !== JobName.PurgeMessageBodies)
      throw new UnrecoverableError(`no handler for job ${job.name}`);
    const report = await purgeMessageBodiesExclusively(this.db, {
      bodyRetentionDays: this.config.retention.messageBodyDays,
      now: this.clock.now(),
    });
    if (!report) return { skipped: 'another purge is running' };
    this.logger.log(`purged ${report.purgedMessageBodies} message bodies created before ${report.before}`);
    return report;
  }
}
