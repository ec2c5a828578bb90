import { WorkerHost } from '@nestjs/bullmq';
import { Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type { Job, Worker } from 'bullmq';
import { Metrics } from './metrics.service';

/**
 * The BullMQ workers this app runs (its `@Processor` classes), found at boot rather than listed by hand.
 * Feeds the job metrics from the workers' own events, and tells readiness which queues this app consumes.
 */
@Injectable()
export class Workers implements OnApplicationBootstrap {
  private found: Worker[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly metrics: Metrics,
  ) {}

  /** The workers exist once every module has initialised (BullMQ's explorer creates them in onModuleInit). */
  onApplicationBootstrap(): void {
    this.found = this.discovery
      .getProviders()
      .map((wrapper) => wrapper.instance as unknown)
      .filter((instance): instance is WorkerHost => instance instanceof WorkerHost)
      .map((host) => host.worker);
    for (const worker of this.found) this.observe(worker);
  }

  /** Names of the queues this app consumes. */
  queues(): string[] {
    return [...new Set(this.found.map((worker) => worker.name))];
  }

  private observe(worker: Worker): void {
    worker.on('active', (job: Job) => {
      // Waiting is measured once, for the first start: a retry's wait is its backoff, which is chosen, not lag.
      if ((job.attemptsStarted ?? 1) > 1 || job.attemptsMade > 0) return;
      const due = job.timestamp + (job.opts.delay ?? 0);
      this.metrics.jobStarted(worker.name, ((job.processedOn ?? Date.now()) - due) / 1000);
    });
    worker.on('completed', (job: Job) => this.finished(worker.name, 'completed', job));
    worker.on('failed', (job: Job | undefined) => {
      if (job) this.finished(worker.name, 'failed', job);
    });
  }

  private finished(queue: string, status: 'completed' | 'failed', job: Job): void {
    if (!job.processedOn) return;
    this.metrics.jobFinished(queue, status, ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000);
  }
}
