import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Cluster } from 'ioredis';
import { freePort, waitFor } from '../../../test/helpers/wait';
import { NotificationQueue } from './queue/notification-queue';
import { JobName, QueueName, type JobOf } from './queue/queue.catalog';
import { createRedis, type RedisClient } from './redis';

/**
 * A real three-node Redis Cluster on this machine (redis-server in cluster mode, slots assigned by
 * `redis-cli --cluster create`): the delivery queue works on it through the apps' own client and producer
 * when the queue prefix is a hash tag, and fails without one (which is why config refuses that at boot).
 */
describe('the delivery queue on a Redis Cluster', () => {
  const nodes: ChildProcess[] = [];
  const ports: number[] = [];
  let dir: string;
  const clients: RedisClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rxn-cluster-'));
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // The cluster bus defaults to port + 10000, past 65535 for a high free port: give it its own.
      const bus = await freePort();
      ports.push(port);
      nodes.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-port',
            String(bus),
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--dir',
            dir,
            '--save',
            '',
            '--appendonly',
            'no',
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    await waitFor('the three nodes', () =>
      ports.every(
        (port) =>
          spawnSync('redis-cli', ['-p', String(port), 'ping'])
            .stdout?.toString()
            .trim() === 'PONG',
      ),
    );
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8' },
    );
    expect(create.status).toBe(0);
    await waitFor(
      'cluster_state:ok on every node',
      () =>
        ports.every((port) =>
          spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
            encoding: 'utf8',
          }).stdout.includes('cluster_state:ok'),
        ),
      20_000,
    );
  }, 40_000);

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    for (const node of nodes) node.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = () => {
    const client = createRedis({ url: `redis://127.0.0.1:${ports[0]}`, cluster: true });
    clients.push(client);
    return client;
  };

  it('connects as a cluster client from one node of REDIS_URL', async () => {
    const client = connect();
    expect(client).toBeInstanceOf(Cluster);
    await waitFor('ready', () => client.status === 'ready', 10_000);
    expect(await client.ping()).toBe('PONG');
  });

  it('delivers every job once, delayed ones included, with a hash-tagged prefix', async () => {
    const prefix = '{rxn-cluster}';
    const queue = new Queue<JobOf<JobName.SendNotification>>(QueueName.Delivery, {
      connection: connect(),
      prefix,
    });
    const seen: string[] = [];
    const worker = new Worker<JobOf<JobName.SendNotification>>(
      QueueName.Delivery,
      async (job) => {
        seen.push(job.data.notificationId);
      },
      { connection: connect(), prefix, concurrency: 8, limiter: { max: 10_000, duration: 1000 } },
    );
    try {
      const ids = Array.from({ length: 200 }, () => randomUUID());
      const now = new Date();
      await new NotificationQueue(queue).enqueue(
        ids.map((notificationId, i) => ({
          notificationId,
          notBefore: i % 10 === 0 ? new Date(now.getTime() + 500) : undefined,
        })),
        now,
      );
      // The same ids again: the job id is the notification id, so nothing is queued twice.
      await new NotificationQueue(queue).enqueue(
        ids.map((notificationId) => ({ notificationId })),
        now,
      );
      await waitFor('every job processed', () => seen.length >= ids.length, 20_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect([...seen].sort()).toEqual([...ids].sort());
    } finally {
      await worker.close();
      await queue.close();
    }
  }, 30_000);

  it("fails without a hash tag: a queue's keys would sit in different slots", async () => {
    const queue = new Queue(QueueName.Delivery, { connection: connect(), prefix: 'rxn-cluster' });
    try {
      await expect(
        queue.add(JobName.SendNotification, { notificationId: randomUUID() }, { jobId: randomUUID() }),
      ).rejects.toThrow(/CROSSSLOT|same slot/i);
    } finally {
      await queue.close();
    }
  });
});
