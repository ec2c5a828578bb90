// BullMQ on the benchmarks' side: the enqueue the producers do, the bare-BullMQ floor, and Redis cleanup.
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { REDIS_URL, ROOT, dist, pkg } from './env.mjs';

const { Queue } = pkg('bullmq');
const IORedis = pkg('ioredis');

export const ENQUEUE_BATCH = 1000;

export function redisConnection() {
  return new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
}

/** Jobs exactly as the product enqueues them: name, `{notificationId}` payload, catalog options, id = notification id. */
export function sendJobs(ids) {
  const { JOB_OPTIONS, JobName } = dist('libs/common/src/queue/queue.catalog');
  return ids.map((notificationId) => ({
    name: JobName.SendNotification,
    data: { notificationId },
    opts: { ...JOB_OPTIONS[JobName.SendNotification], jobId: notificationId, delay: 0 },
  }));
}

/** addBulk in the producers' batch size, one batch after the other. Returns seconds taken. */
export async function addBulkInBatches(queue, jobs) {
  const t0 = performance.now();
  for (let i = 0; i < jobs.length; i += ENQUEUE_BATCH) await queue.addBulk(jobs.slice(i, i + ENQUEUE_BATCH));
  return (performance.now() - t0) / 1000;
}

export function openQueue(prefix, name) {
  return new Queue(name, { connection: redisConnection(), prefix });
}

/**
 * The floor: a bare BullMQ Worker in its own process (as the dispatcher is), same concurrency and lock settings,
 * doing nothing, drains `n` jobs of the delivery job's shape from the same Redis. Returns jobs per second from
 * the first addBulk to the last completion.
 */
export async function bareBullmqFloor(prefix, n, concurrency) {
  const queueName = `floor-${randomUUID().slice(0, 8)}`;
  const child = fork(join(ROOT, 'bench/bare-worker.mjs'), [], {
    env: { ...process.env, FLOOR_PREFIX: prefix, FLOOR_QUEUE: queueName, FLOOR_JOBS: String(n), FLOOR_CONCURRENCY: String(concurrency), REDIS_URL },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const message = (type) =>
    new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m.type === type) {
          child.off('message', onMessage);
          resolve(m);
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`bare worker exited (${code}) before '${type}'`)));
    });
  await message('ready');
  const queue = openQueue(prefix, queueName);
  const jobs = sendJobs(Array.from({ length: n }, () => randomUUID()));
  const done = message('done');
  const t0 = performance.now();
  const enqueueSeconds = await addBulkInBatches(queue, jobs);
  const { cpuSeconds: workerCpuSeconds } = await done;
  const seconds = (performance.now() - t0) / 1000;
  child.send({ type: 'stop' });
  await new Promise((resolve) => child.once('exit', resolve));
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  return { jobs: n, seconds, perSecond: n / seconds, enqueueSeconds, workerCpuSeconds };
}

/** Deletes every key under the benchmark's prefix. */
export async function cleanPrefix(prefix) {
  const redis = redisConnection();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
