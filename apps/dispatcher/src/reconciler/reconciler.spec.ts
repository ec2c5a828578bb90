import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import Redis from 'ioredis';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import type { Sandbox } from '../../../../tools/twilio-sandbox/src/sandbox';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } from '@rxnotify/common/config/config';
import { waitFor } from '../../../../test/helpers/wait';
import { startDispatcherWithSandbox, type DispatcherUnderTest } from '../../../../test/helpers/dispatcher';
import { ReconcilerService } from './reconciler.service';

describe('reconciler (Postgres is the truth, Redis the transport)', () => {
  const clock = new FakeClock(new Date('2026-06-10T16:00:00Z'));
  let t: DispatcherUnderTest;
  let sandbox: Sandbox;
  let reconciler: ReconcilerService;
  let phone = 4200;

  beforeAll(async () => {
    t = await startDispatcherWithSandbox({ clock });
    sandbox = t.sandbox;
    reconciler = t.app.get(ReconcilerService);
  });
  afterAll(() => t.close());

  /** The provider records a text that no answer ever reached us for (a create over Twilio's REST API). */
  const providerTakes = (to: string, from: string, body: string) =>
    fetch(`${sandbox.url}/2010-04-01/Accounts/${SANDBOX_ACCOUNT_SID}/Messages.json`, {
      method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${SANDBOX_ACCOUNT_SID}:${SANDBOX_AUTH_TOKEN}`).toString('base64')}`,
        'Content-Type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ To: to, From: from, Body: body }).toString(),
    });

  it('sends notifications that were never enqueued, or whose jobs Redis lost, exactly once', async () => {
    const pharmacy = await t.given.pharmacy({ settings: { sendRatePerSecond: 1000 } });
    const patients = await Promise.all(
      Array.from({ length: 20 }, () =>
        t.given.patient(pharmacy, { phone: `+1415555${phone++}`, consent: ['sms'] }),
      ),
    );
    // Committed as pending, never enqueued (as if Redis was down when the scheduler wrote them).
    const notices = await Promise.all(patients.map((p) => t.given.notice(p, { dueAt: clock.now() })));
    // Jobs that existed and then vanished (a FLUSHALL of this deployment's keys).
    const redis = new Redis('redis://127.0.0.1:6379');
    const keys = await redis.keys(`${t.config.queue.prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();

    expect(await reconciler.reconcile()).toBe(20);
    await waitFor('all sent', async () => {
      const [{ n }] = await t.db.query(
        `SELECT count(*)::int AS n FROM notifications WHERE id = ANY($1) AND state IN ('sent', 'delivered')`,
        [notices.map((x) => x.notificationId)],
      );
      return n === 20;
    });
    for (const p of patients) expect(sandbox.messages().filter((m) => m.to === p.phone)).toHaveLength(1);
    // Nothing left owed: another round creates nothing.
    expect(await reconciler.reconcile()).toBe(0);
  });

  it('takes back a notification whose worker died holding it, and settles its open attempt at the provider', async () => {
    const pharmacy = await t.given.pharmacy({
      name: 'Second',
      smsFrom: '+14155550120',
      settings: { sendRatePerSecond: 1000 },
    });
    const patient = await t.given.patient(pharmacy, { phone: `+1415555${phone++}`, consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient, { dueAt: clock.now() });
    // A worker claimed it, wrote its intent and the provider took the message, then the worker was killed;
    // its 60 s lease has since run out.
    const messageId = await t.given.intentMessage(patient, notificationId, {
      from: pharmacy.smsFrom,
      body: 'Second: ready. Reply STOP to opt out.',
      createdAt: new Date(clock.now().getTime() - 90_000),
    });
    await providerTakes(patient.phone, pharmacy.smsFrom, 'Second: ready. Reply STOP to opt out.');
    await t.db.query(
      `UPDATE notifications SET state = 'sending', lease_owner = 'dead-worker', lease_expires_at = $2 WHERE id = $1`,
      [notificationId, new Date(clock.now().getTime() - 1000)],
    );

    expect(await reconciler.reconcile()).toBeGreaterThanOrEqual(1);
    await waitFor('settled as sent', async () => {
      const [n] = await t.db.query(`SELECT state FROM notifications WHERE id = $1`, [notificationId]);
      return ['sent', 'delivered'].includes(n.state);
    });
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(1);
    const [settled] = await t.db.query(`SELECT status, provider_sid FROM messages WHERE id = $1`, [
      messageId,
    ]);
    expect(settled.provider_sid).toMatch(/^SM/);
  });

  it('waits on Redis with no Postgres transaction open, still one round at a time', async () => {
    const pharmacy = await t.given.pharmacy({
      smsFrom: '+14155550121',
      settings: { sendRatePerSecond: 1000 },
    });
    const patient = await t.given.patient(pharmacy, { phone: `+1415555${phone++}`, consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient, { dueAt: clock.now() });
    // Redis stalls (down, say) while the round asks it about the owed notification.
    const queue = t.app.get<Queue>(getQueueToken(QueueName.Delivery));
    const getJob = queue.getJob.bind(queue);
    let stalled = () => undefined as void;
    let resume = () => undefined as void;
    const isStalled = new Promise<void>((resolve) => (stalled = resolve));
    const spy = jest.spyOn(queue, 'getJob').mockImplementation(async (id: string) => {
      if (id === notificationId) {
        stalled();
        await new Promise<void>((resolve) => (resume = resolve));
      }
      return getJob(id);
    });
    try {
      const round = reconciler.reconcile();
      await isStalled;
      const [{ open }] = await t.db.query(
        `SELECT count(*)::int AS open FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
      );
      expect(open).toBe(0);
      // Another replica's round meanwhile skips.
      expect(await t.app.get(ReconcilerService).reconcile()).toBe(0);
      resume();
      expect(await round).toBeGreaterThanOrEqual(1);
    } finally {
      spy.mockRestore();
    }
    await waitFor('sent', async () => {
      const [n] = await t.db.query(`SELECT state FROM notifications WHERE id = $1`, [notificationId]);
      return ['sent', 'delivered'].includes(n.state);
    });
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(1);
  });

  it('settles attempts left open on notifications no longer owed, at the provider, once they are old enough', async () => {
    const pharmacy = await t.given.pharmacy({
      smsFrom: '+14155550122',
      settings: { sendRatePerSecond: 1000 },
    });
    const orphan = async (state: string, ageMs: number, body: string) => {
      const patient = await t.given.patient(pharmacy, { phone: `+1415555${phone++}`, consent: ['sms'] });
      const { notificationId } = await t.given.notice(patient, { dueAt: clock.now() });
      await t.db.query(`UPDATE notifications SET state = $2, reason = $3 WHERE id = $1`, [
        notificationId,
        state,
        state === 'cancelled' ? 'stale:picked_up' : null,
      ]);
      const messageId = await t.given.intentMessage(patient, notificationId, {
        from: pharmacy.smsFrom,
        body,
        createdAt: new Date(clock.now().getTime() - ageMs),
      });
      return { patient, messageId, notificationId };
    };
    const message = async (id: string) =>
      (await t.db.query(`SELECT status, provider_sid FROM messages WHERE id = $1`, [id]))[0];

    // Went out, but the notice was cancelled before anyone recorded the answer.
    const wentOut = await orphan('cancelled', 90_000, 'Orphan: ready. Reply STOP to opt out.');
    await providerTakes(wentOut.patient.phone, pharmacy.smsFrom, 'Orphan: ready. Reply STOP to opt out.');
    // Never reached the provider; the notice was sent by a later attempt.
    const never = await orphan('sent', 90_000, 'Orphan: never sent.');
    // Too recent to be looked up: it may still be landing.
    const young = await orphan('cancelled', 10_000, 'Orphan: young.');

    await reconciler.reconcile();
    expect(await message(wentOut.messageId)).toEqual({
      status: expect.not.stringMatching(/^intent$/),
      provider_sid: expect.stringMatching(/^SM/),
    });
    expect(await message(never.messageId)).toMatchObject({ status: 'failed', provider_sid: null });
    expect(await message(young.messageId)).toMatchObject({ status: 'intent' });
    // Settling sends nothing, and leaves the notices as they were (the cancelled one keeps its reason).
    const notice = async (id: string) =>
      (await t.db.query(`SELECT state, reason FROM notifications WHERE id = $1`, [id]))[0];
    expect(await notice(wentOut.notificationId)).toEqual({ state: 'cancelled', reason: 'stale:picked_up' });
    expect(await notice(never.notificationId)).toMatchObject({ state: 'sent' });
    expect(sandbox.messages().filter((m) => m.to === wentOut.patient.phone)).toHaveLength(1);
    expect(sandbox.messages().filter((m) => m.to === never.patient.phone)).toHaveLength(0);
  });
});
