import { FakeClock } from '@rxnotify/common/clock/clock';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { startDispatcherWithSandbox, type DispatcherUnderTest } from '../../../../test/helpers/dispatcher';
import { waitFor } from '../../../../test/helpers/wait';
import { SendRateLimiter } from './send-rate-limiter';

function countPerSecond(times: number[]): Map<number, number> {
  const perSecond = new Map<number, number>();
  for (const t of times) {
    const second = Math.floor(t / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  return perSecond;
}

/** Two dispatcher replicas on one queue, one database and one provider, as in production. */
describe('dispatcher replicas share the 429 pause and the per-pharmacy send rate', () => {
  const clock = new FakeClock(new Date('2026-06-10T16:00:00Z')); // noon in New York
  const prefix = `rxt-rep-${Date.now().toString(36)}`;
  let database: TestDatabase;
  let a: DispatcherUnderTest;
  let b: DispatcherUnderTest;
  let phoneCounter = 7000;
  const nextPhone = () => `+1415555${String(phoneCounter++).padStart(4, '0')}`;
  const textsTo = (p: PatientFixture) => a.sandbox.messages().filter((m) => m.to === p.phone);
  const sentState = (id: string) =>
    a.db.query(`SELECT state FROM notifications WHERE id = $1`, [id]).then((r) => r[0]?.state);
  const allSent = (ids: string[]) =>
    waitFor(
      'all sent',
      async () => (await Promise.all(ids.map(sentState))).every((s) => s === 'sent' || s === 'delivered'),
      20000,
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    a = await startDispatcherWithSandbox({ clock, database, env: { QUEUE_PREFIX: prefix } });
    b = await startDispatcherWithSandbox({
      clock,
      database,
      env: { QUEUE_PREFIX: prefix },
      providerUrl: () => a.sandbox.url,
    });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await database.drop();
  });

  const patients = async (pharmacy: PharmacyFixture, n: number) => {
    const list: PatientFixture[] = [];
    for (let i = 0; i < n; i++)
      list.push(await a.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] }));
    return list;
  };

  it('a 429 on one replica pauses the other too, and spends no attempt', async () => {
    const pharmacy = await a.given.pharmacy({ settings: { sendRatePerSecond: 1000 } });
    const [throttled, ...others] = await patients(pharmacy, 5);
    a.sandbox.setFault(throttled.phone, { kind: 'http429', times: 2 });
    const first = await a.given.notice(throttled);
    await a.queue.enqueue([{ notificationId: first.notificationId }]);
    const [refused] = await waitFor('the 429', async () => {
      const rows = await a.db.query(
        `SELECT updated_at FROM messages WHERE notification_id = $1 AND error_code = 429`,
        [first.notificationId],
      );
      return rows.length > 0 ? rows : null;
    });
    const refusedAt = (refused.updated_at as Date).getTime();
    // Once the refusing worker has paused the queue, give both replicas work.
    await waitFor('the pause', async () => (await a.jobs.getRateLimitTtl()) > 0);
    const later = await Promise.all(others.map((p) => a.given.notice(p)));
    await a.queue.enqueue(later.map((n) => ({ notificationId: n.notificationId })));
    await allSent([first.notificationId, ...later.map((n) => n.notificationId)]);

    // The queue paused for 2 s after the refusal: no replica sent anything before it ran out.
    for (const p of others) {
      const [text] = textsTo(p);
      expect(Date.parse(text.receivedAt) - refusedAt).toBeGreaterThanOrEqual(1500);
    }
    expect(textsTo(throttled)).toHaveLength(1);
    // Two refusals, yet the throttled job used no more attempts than one sent without any.
    const throttledJob = await a.jobs.getJob(first.notificationId);
    const plainJob = await a.jobs.getJob(later[0].notificationId);
    expect(throttledJob?.attemptsMade).toBe(plainJob?.attemptsMade);
  }, 30000);

  it("keeps a pharmacy's sends at its rate across both replicas", async () => {
    const pharmacy = await a.given.pharmacy({
      name: 'Rate Limited Rx',
      smsFrom: '+14155550160',
      settings: { sendRatePerSecond: 10 },
    });
    const list = await patients(pharmacy, 30);
    const notices = await Promise.all(list.map((p) => a.given.notice(p)));
    await a.queue.enqueue(notices.map((n) => ({ notificationId: n.notificationId })));
    await allSent(notices.map((n) => n.notificationId));

    const times = list
      .map((p) => textsTo(p))
      .flat()
      .map((m) => Date.parse(m.receivedAt))
      .sort((x, y) => x - y);
    expect(times).toHaveLength(30);
    // 30 sends at 10 a second use at least three seconds' budget: more than a second from first to last
    // (at once they would take a fraction of one).
    expect(times[29] - times[0]).toBeGreaterThan(1000);
    // Seen at the provider, a send granted late in one second may land in the next: never two seconds' worth.
    for (const count of countPerSecond(times).values()) expect(count).toBeLessThanOrEqual(20);
  }, 30000);

  it("grants a pharmacy's send slots at its rate to both replicas' limiters together", async () => {
    const pharmacyId = (await a.given.pharmacy({ name: 'Slots Rx', smsFrom: '+14155550161' })).id;
    const limiters = [a.app.get(SendRateLimiter), b.app.get(SendRateLimiter)];
    // The second each slot was granted in, read as soon as it was: no provider latency in between.
    const granted = await Promise.all(
      Array.from({ length: 30 }, (_, i) => limiters[i % 2].acquire(pharmacyId, 10).then(() => Date.now())),
    );
    const perSecond = countPerSecond(granted);
    expect(perSecond.size).toBeGreaterThanOrEqual(3);
    // A little slack for grants whose answer arrives just after the second turned (a busy machine); twice the
    // rate, or no limit at all, would be far over it.
    for (const count of perSecond.values()) expect(count).toBeLessThanOrEqual(13);
  }, 30000);
});
