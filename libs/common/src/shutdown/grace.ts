import { Logger } from '@nestjs/common';
import type { Worker } from 'bullmq';

/**
 * How long SIGTERM waits for work in flight (jobs, a reconciler round) before shutting down anyway. Below the
 * 30 s orchestrators usually allow before SIGKILL, so connections still close cleanly. Work cut short is
 * recovered: its claim's lease runs out and its attempt, if any, is settled before anything is resent.
 */
export const SHUTDOWN_GRACE_MS = 25_000;

/** True when `work` settled within `ms`, false when the time ran out first. Never rejects. */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops a worker taking jobs and waits for the running ones, for at most `graceMs`. Past it, shutdown goes
 * on without them: BullMQ's force close cannot be asked for once a close is under way, and the process ends
 * as soon as shutdown completes, abandoning those jobs to the lease and stalled-job recovery.
 */
export async function closeWorkerWithin(worker: Worker, graceMs = SHUTDOWN_GRACE_MS): Promise<boolean> {
  if (await settlesWithin(worker.close(), graceMs)) return true;
  new Logger('Shutdown').warn(
    `${worker.name} jobs still running ${graceMs} ms after SIGTERM: shutting down anyway; leases recover them`,
  );
  return false;
}
