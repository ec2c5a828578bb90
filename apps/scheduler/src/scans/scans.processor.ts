import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { JobName, QueueName } from '@rxnotify/common/queue/queue.catalog';
import { keepScheduled } from '@rxnotify/common/queue/job-schedule';
import { closeWorkerWithin } from '@rxnotify/common/shutdown/grace';
import { ScansService, type ScanCounts } from './scans.service';

const SCHEDULER_ID = 'periodic-scan';

/** Runs the timed scan. The job scheduler is shared by replicas (one id), so each interval yields one job. */
@Processor(QueueName.Scans, { concurrency: 1 })
export class ScansProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ScansProcessor.name);
  private stopSchedule = (): void => undefined;

  constructor(
    private readonly scans: ScansService,
    @InjectQueue(QueueName.Scans) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.stopSchedule = keepScheduled(
      this.queue,
      SCHEDULER_ID,
      this.config.scanIntervalSeconds * 1000,
      JobName.Scan,
      this.logger,
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopSchedule();
    await closeWorkerWithin(this.worker);
  }

  async process(job: Job): Promise<ScanCounts> {
    if (job.name !== JobName.Scan) throw new UnrecoverableError(`no handler for job ${job.name}`);
    return this.scans.scan();
  }
}
