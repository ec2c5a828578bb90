// The bare-BullMQ floor's worker (forked by lib/queue.mjs): the delivery worker's settings, a processor that does nothing.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Worker } = require('bullmq');
const IORedis = require('ioredis');

const total = Number(process.env.FLOOR_JOBS);
let completed = 0;
const worker = new Worker(process.env.FLOOR_QUEUE, async () => ({ outcome: 'sent' }), {
  connection: new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null }),
  prefix: process.env.FLOOR_PREFIX,
  concurrency: Number(process.env.FLOOR_CONCURRENCY),
  lockDuration: 30_000,
  stalledInterval: 30_000,
});
let cpuAtReady;
worker.on('completed', () => {
  completed += 1;
  if (completed === total) {
    const { user, system } = process.cpuUsage(cpuAtReady);
    process.send({ type: 'done', cpuSeconds: (user + system) / 1e6 });
  }
});
process.on('message', async (m) => {
  if (m.type === 'stop') {
    await worker.close();
    process.exit(0);
  }
});
await worker.waitUntilReady();
cpuAtReady = process.cpuUsage();
process.send({ type: 'ready' });
