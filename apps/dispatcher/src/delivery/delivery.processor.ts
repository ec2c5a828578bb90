import { Processor, WorkerHost } from '@nestjs/bullmq';
import type { BeforeApplicationShutdown } from '@nestjs/common';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Clock } from '@rxnotify/common/clock/clock';
import { JobName, QueueName, type JobOf } from '@rxnotify/common/queue/queue.catalog';
import { closeWorkerWithin } from '@rxnotify/common/shutdown/grace';
import { withJobContext } from '@rxnotify/common/telemetry/job-context';
import { LEASE_SECONDS, DeliveryService, type DeliveryOutcome } from './delivery.service';

export const DELIVERY_CONCURRENCY = 32;

/**
 * Parses the job, calls the service, and turns its outcome into what BullMQ should do: a held notification
 * waits as a delayed job (same id) until its time, a 429 pauses the queue without spending an attempt.
 * The outcome (ids and reasons only) is what BullMQ stores in Redis.
 */
@Processor(QueueName.Delivery, {
  concurrency: DELIVERY_CONCURRENCY,
  // A job whose worker died is handed to another within the claim's lease.
  lockDuration: 30_000,
  stalledInterval: 30_000,
  maxStalledCount: Math.ceil((LEASE_SECONDS * 1000) / 30_000) + 10,
  // BullMQ honours a rateLimit() pause (after a 429) on every worker only when a limiter is configured; this
  // one is far above any real throughput (the per-pharmacy send rate is SendRateLimiter's job).
  limiter: { max: 100_000, duration: 1000 },
})
export class DeliveryProcessor extends WorkerHost implements BeforeApplicationShutdown {
  constructor(
    private readonly delivery: DeliveryService,
    private readonly clock: Clock,
  ) {
    super();
  }

  /** On SIGTERM: take no new jobs and let the ones in flight finish while Postgres is still open (bounded). */
  async beforeApplicationShutdown(): Promise<void> {
    await closeWorkerWithin(this.worker);
  }

  async process(job: Job<JobOf<JobName.SendNotification>>, token?: string): Promise<DeliveryOutcome> {
    if (job.name !== JobName.SendNotification) throw new UnrecoverableError(`no handler for job ${job.name}`);
    // One trace per notification: this span is a child of the one that enqueued the job.
    const outcome = await withJobContext(job, () => this.delivery.deliver(job.data.notificationId));
    if (outcome.outcome === 'deferred') {
      // BullMQ keeps time by the wall clock; the hold is measured by ours.
      await job.moveToDelayed(
        Date.now() + Math.max(0, Date.parse(outcome.until) - this.clock.now().getTime()),
        token,
      );
      throw new DelayedError();
    }
    if (outcome.outcome === 'throttled') {
      await this.worker.rateLimit(outcome.retryAfterMs);
      throw Worker.RateLimitError();
    }
    return outcome;
  }
}
