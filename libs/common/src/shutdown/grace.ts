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

/** How long a shutdown waits for a worker still connecting to Redis before closing it regardless. */
const CONNECT_WAIT_MS = 2_000;

let deadline: number | undefined;

/**
 * What is left of the one grace period every shutdown hook of this process shares, counted from the first hook
 * that asks: hooks run module after module, and each waiting a full period would add up past SIGKILL.
 */
export function shutdownGraceLeft(graceMs = SHUTDOWN_GRACE_MS): number {
  deadline ??= Date.now() + graceMs;
  return Math.max(0, deadline - Date.now());
}

/**
 * Stops a worker taking jobs and waits for the running ones, for at most `graceMs`; then closes it. Past the
 * grace the close is forced: an unforced one would wait for those jobs again in every later close (Nest's own
 * hook closes the worker once more), and the jobs left running are recovered by their leases and the stalled
 * check.
 */
export async function closeWorkerWithin(worker: Worker, graceMs = shutdownGraceLeft()): Promise<boolean> {
  // BullMQ's close, on a connection still being set up, removes the connection's error listeners and then fails
  // the set-up: an unhandled rejection, so an app stopped just after boot would exit with a crash. Waiting for the
  // connections first avoids it whenever Redis answers within CONNECT_WAIT_MS (milliseconds when it is up); when it
  // does not, the process exits on that rejection, as it did before. The wait comes out of the grace period.
  const started = Date.now();
  await settlesWithin(worker.waitUntilReady(), Math.min(graceMs, CONNECT_WAIT_MS));
  const drained = await settlesWithin(worker.pause(), Math.max(0, graceMs - (Date.now() - started)));
  if (!drained) {
    new Logger('Shutdown').warn(
      `${worker.name} jobs still running ${graceMs} ms after SIGTERM: shutting down anyway; leases recover them`,
    );
  }
  await worker.close(!drained);
  return drained;
}
