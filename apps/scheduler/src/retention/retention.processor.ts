import { InjectDataSource } from '@nestjs/typeorm';
import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { Clock } from '@rxnotify/common/clock/clock';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { JobName, QueueName } from '@rxnotify/common/queue/queue.catalog';
import { purgeMessageBodiesExclusively, type PurgeReport } from '@rxnotify/common/retention/retention';
import { keepScheduled } from '@rxnotify/common/queue/job-schedule';
import { closeWorkerWithin } from '@rxnotify/common/shutdown/grace';

const SCHEDULER_ID = 'daily-message-body-purge';
export const PURGE_EVERY_MS = 24 * 3600_000;

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
  private stopSchedule = (): void => undefined;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectQueue(QueueName.Retention) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.stopSchedule = keepScheduled(
      this.queue,
      SCHEDULER_ID,
      PURGE_EVERY_MS,
      JobName.PurgeMessageBodies,
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopSchedule();
    await closeWorkerWithin(this.worker);
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
