import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Queue, Worker } from 'bullmq';
import { closeWorkerWithin, SHUTDOWN_GRACE_MS, settlesWithin } from './grace';

const connection = { host: '127.0.0.1', port: 6379 };

describe('bounded shutdown of a BullMQ worker (real Redis)', () => {
  const prefix = `rxt-grace-${randomBytes(4).toString('hex')}`;
  let queue: Queue;
  beforeAll(() => {
    queue = new Queue('grace', { connection, prefix });
  });
  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
  });

  /** A worker whose job runs until `finish` is called; resolves once that job has started. */
  const busyWorker = async () => {
    let finish = () => undefined as void;
    let started = () => undefined as void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = new Worker(
      'grace',
      () =>
        new Promise<void>((resolve) => {
          finish = resolve;
          started();
        }),
      { connection, prefix },
    );
    await queue.add('job', {});
    await running;
    return { worker, finish: () => finish() };
  };

  it('stays below the usual 30 s before SIGKILL', () => {
    expect(SHUTDOWN_GRACE_MS).toBeLessThan(30_000);
    expect(SHUTDOWN_GRACE_MS).toBeGreaterThanOrEqual(10_000);
  });

  it('waits for a job that finishes within the grace period', async () => {
    const { worker, finish } = await busyWorker();
    setTimeout(finish, 200);
    const started = Date.now();
    expect(await closeWorkerWithin(worker, 5_000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(worker.isRunning()).toBe(false);
  });

  it('closes a worker that is still connecting to Redis without an unhandled error', async () => {
    // BullMQ's close, called while the worker's connections are still being set up, drops their error
    // listeners and then fails the set-up: an unhandled rejection that ends the process (an app stopped just after boot).
    // Jest fails the test on an unhandled rejection; the pause at the end lets a late one arrive.
    for (let i = 0; i < 20; i++) {
      const worker = new Worker('grace', async () => undefined, { connection, prefix });
      await new Promise((resolve) => setTimeout(resolve, i % 4));
      expect(await closeWorkerWithin(worker, 5_000)).toBe(true);
      expect(worker.isRunning()).toBe(false);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  });

  it('gives up on a job that outlives the grace period instead of hanging shutdown', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { worker, finish } = await busyWorker();
    const started = Date.now();
    expect(await closeWorkerWithin(worker, 300)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('grace jobs still running 300 ms after SIGTERM'),
    );
    warn.mockRestore();
    // The close was forced: a later close (Nest's own shutdown hook calls it again) does not wait for the job.
    expect(await settlesWithin(worker.close(), 300)).toBe(true);
    finish();
  });
});
