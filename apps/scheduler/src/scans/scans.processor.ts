import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { JOB_OPTIONS, JobName, QueueName } from '@rxnotify/common/queue/queue.catalog';
import { closeWorkerWithin } from '@rxnotify/common/shutdown/grace';
import { ScansService, type ScanCounts } from './scans.service';

const SCHEDULER_ID = 'periodic-scan';
/** The schedule lives in Redis; asserting it again every minute restores it after Redis lost its data. */
const REASSERT_MS = 60_000;

/** Runs the timed scan. The job scheduler is shared by replicas (one id), so each interval yields one job. */
@Processor(QueueName.Scans, { concurrency: 1 })
export class ScansProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ScansProcessor.name);
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly scans: ScansService,
    @InjectQueue(QueueName.Scans) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    // Not awaited: with Redis away the app must still boot (and say so on /health); the timer retries.
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
      `scan schedule not asserted (will retry): ${error instanceof Error ? error.message : 'unknown error'}`,
    );
  }

  private async assertSchedule(): Promise<void> {
    await this.queue.upsertJobScheduler(
      SCHEDULER_ID,
      { every: this.config.scanIntervalSeconds * 1000 },
      { name: JobName.Scan, data: {}, opts: JOB_OPTIONS[JobName.Scan] },
    );
  }

  async process(job: Job): Promise<ScanCounts> {
    if (job.name !== JobName.Scan) throw new UnrecoverableError(`no handler for job ${job.name}`);
    return this.scans.scan();
  }
}
