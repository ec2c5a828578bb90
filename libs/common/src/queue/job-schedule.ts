import type { Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { JOB_OPTIONS, type JobName } from './queue.catalog';

/** The schedule lives in Redis: asserting it again every minute restores it after Redis lost its data. */
const REASSERT_MS = 60_000;

/**
 * Keeps a periodic job's BullMQ job scheduler in place. Every replica asserts the same scheduler id, so each
 * period yields one job whatever the number of replicas. The first assertion is not awaited: with Redis away
 * the app must still boot (and say so on /health); the timer retries. Returns what stops the timer.
 */
export function keepScheduled(
  queue: Queue,
  schedulerId: string,
  everyMs: number,
  job: JobName,
  logger: Logger,
): () => void {
  const assert = () =>
    queue
      .upsertJobScheduler(schedulerId, { every: everyMs }, { name: job, data: {}, opts: JOB_OPTIONS[job] })
      .catch((error: unknown) =>
        logger.warn(
          `${schedulerId} schedule not asserted (will retry): ${error instanceof Error ? error.message : 'unknown error'}`,
        ),
      );
  void assert();
  const timer = setInterval(() => void assert(), REASSERT_MS);
  timer.unref();
  return () => clearInterval(timer);
}
