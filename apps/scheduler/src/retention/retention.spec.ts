import { Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { dataSourceOptions } from '@rxnotify/common/database/data-source';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { purgeMessageBodiesExclusively } from '@rxnotify/common/retention/retention';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from '../../../../test/helpers/config';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { given } from '../../../../test/helpers/given';
import { waitFor } from '../../../../test/helpers/wait';
import { loadConfig } from '@rxnotify/common/config/config';
import { SchedulerModule } from '../scheduler.module';
import { PURGE_EVERY_MS } from './retention.processor';

describe('daily message body purge (scheduler, real Postgres and Redis)', () => {
  const clock = new FakeClock(new Date('2026-06-01T12:00:00Z'));
  const daysAgo = (days: number) => new Date(clock.now().getTime() - days * 86_400_000);
  const config = loadConfig({
    NODE_ENV: 'test',
    PHI_ENCRYPTION_KEYS: TEST_PHI_KEYS,
    PHI_INDEX_KEY: TEST_INDEX_KEY,
  });
  const keys = new KeyRing(config.phi.keys, config.phi.indexKey);
  const env = { MESSAGE_BODY_RETENTION_DAYS: '30', QUEUE_PREFIX: `rxt-purge-${Date.now().toString(36)}` };
  let database: TestDatabase;
  let db: DataSource;
  let replicas: TestApp[] = [];
  let queue: Queue;
  let oldMessage: string;
  let recentMessage: string;

  const stored = (id: string) =>
    db
      .query<{ body_enc: string | null; to_enc: string; status: string; provider_sid: string | null }[]>(
        `SELECT body_enc, to_enc, status, provider_sid FROM messages WHERE id = $1`,
        [id],
      )
      .then((rows) => rows[0]);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
    const pharmacy = await given(db, keys).pharmacy();
    const patient = await given(db, keys).patient(pharmacy, { phone: '+14155556122' });
    const { notificationId } = await given(db, keys).notice(patient);
    oldMessage = await given(db, keys).intentMessage(patient, notificationId, {
      body: 'Your prescription was ready.',
      createdAt: daysAgo(31),
    });
    recentMessage = await given(db, keys).intentMessage(patient, notificationId, {
      body: 'Your prescription is ready.',
      createdAt: daysAgo(29),
    });
    queue = new Queue(QueueName.Retention, {
      connection: { host: '127.0.0.1', port: 6379 },
      prefix: env.QUEUE_PREFIX,
    });
    // Two replicas, as a deployment runs them.
    for (let i = 0; i < 2; i++)
      replicas.push(await startTestApp((c) => SchedulerModule.forRoot(c, { clock }), { database, env }));
  });
  afterAll(async () => {
    for (const replica of replicas) await replica.close();
    replicas = [];
    await queue?.obliterate({ force: true });
    await queue?.close();
    await db?.destroy();
    await database?.drop();
  });

  it('erases bodies older than MESSAGE_BODY_RETENTION_DAYS without anyone running the CLI, keeping the metadata', async () => {
    const before = await stored(oldMessage);
    await waitFor('the old body purged', async () => (await stored(oldMessage)).body_enc === null, 20000);
    expect({ ...(await stored(oldMessage)), body_enc: before.body_enc }).toEqual(before);
    expect(keys.decrypt((await stored(recentMessage)).body_enc as string)).toBe(
      'Your prescription is ready.',
    );

    // One daily schedule however many replicas assert it, and one run per day: its result holds a count, no PHI.
    const schedulers = await queue.getJobSchedulers();
    expect(schedulers).toHaveLength(1);
    expect(Number(schedulers[0].every)).toBe(PURGE_EVERY_MS);
    const done = await waitFor('the run recorded', async () => {
      const jobs = await queue.getJobs(['completed']);
      return jobs.length > 0 ? jobs : null;
    });
    expect(done).toHaveLength(1);
    expect(done[0].returnvalue).toEqual({ before: daysAgo(30).toISOString(), purgedMessageBodies: 1 });
  });

  it('runs no purge while another holds the lock', async () => {
    const session = db.createQueryRunner();
    await session.connect();
    try {
      await session.query('SELECT pg_advisory_lock(7270065)');
      expect(await purgeMessageBodiesExclusively(db, { bodyRetentionDays: 30, now: clock.now() })).toBeNull();
      await session.query('SELECT pg_advisory_unlock(7270065)');
      expect(await purgeMessageBodiesExclusively(db, { bodyRetentionDays: 30, now: clock.now() })).toEqual({
        before: daysAgo(30).toISOString(),
        purgedMessageBodies: 0,
      });
    } finally {
      await session.release();
    }
  });
});
