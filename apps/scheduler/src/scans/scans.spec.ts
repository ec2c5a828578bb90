import { Queue } from 'bullmq';
import fc from 'fast-check';
import request from 'supertest';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PharmacyFixture } from '../../../../test/helpers/given';
import { SchedulerModule } from '../scheduler.module';
import { ScansService } from './scans.service';

type FillOptions = Parameters<TestApp['given']['fill']>[1];

describe('scans (real Postgres and Redis, injected clock)', () => {
  const clock = new FakeClock(new Date('2026-03-15T15:00:00Z'));
  let t: TestApp;
  let scans: ScansService;
  let pharmacy: PharmacyFixture;

  beforeAll(async () => {
    t = await startTestApp((config) => SchedulerModule.forRoot(config, { clock }));
    scans = t.app.get(ScansService);
    pharmacy = await t.given.pharmacy({ timezone: 'America/New_York' });
  });
  afterAll(async () => {
    const queues = [QueueName.Delivery, QueueName.Scans].map(
      (name) =>
        new Queue(name, { connection: { host: '127.0.0.1', port: 6379 }, prefix: t.config.queue.prefix }),
    );
    await t.close();
    for (const queue of queues) {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  /** Scans a fresh patient with the given fills and returns what it created for them. */
  async function notificationsFor(
    fills: FillOptions[],
    at: Date = clock.now(),
    on: PharmacyFixture = pharmacy,
  ) {
    clock.set(at);
    const patient = await t.given.patient(on);
    for (const fill of fills) await t.given.fill(patient, { now: at, ...fill });
    await scans.scan();
    const rows = await t.db.query<{ kind: string; step: number | null }[]>(
      `SELECT kind, step FROM notifications WHERE patient_id = $1 ORDER BY kind`,
      [patient.id],
    );
    return rows.map((r) => (r.step ? `${r.kind}#${r.step}` : r.kind));
  }

  it.each<[string, FillOptions[], string[]]>([
    ['30-day supply, run-out in 4 days (lead 5)', [{ daysSupply: 30, pickedUpDaysAgo: 26 }], ['refill_due']],
    ['30-day supply, run-out in 6 days', [{ daysSupply: 30, pickedUpDaysAgo: 24 }], []],
    [
      '3-day supply picked up today: not due on the day of the fill',
      [{ daysSupply: 3, pickedUpDaysAgo: 0 }],
      [],
    ],
    ['3-day supply picked up yesterday: due', [{ daysSupply: 3, pickedUpDaysAgo: 1 }], ['refill_due']],
    ['30-day supply, run-out exactly in 5 days', [{ daysSupply: 30, pickedUpDaysAgo: 25 }], ['refill_due']],
    ['90-day supply, run-out in 6 days (lead 7)', [{ daysSupply: 90, pickedUpDaysAgo: 84 }], ['refill_due']],
    ['90-day supply, run-out in 8 days', [{ daysSupply: 90, pickedUpDaysAgo: 82 }], []],
    ['no refills left', [{ daysSupply: 30, pickedUpDaysAgo: 26, refillsRemaining: 0 }], ['renewal_needed']],
    ['run-out 7 days ago: still within grace', [{ daysSupply: 30, pickedUpDaysAgo: 37 }], ['refill_due']],
    ['non-maintenance past grace: nothing', [{ daysSupply: 30, pickedUpDaysAgo: 40 }], []],
    [
      'maintenance past grace: adherence gap',
      [{ daysSupply: 30, pickedUpDaysAgo: 40, maintenance: true }],
      ['adherence_gap'],
    ],
    [
      'maintenance gap that opened long ago: history, not news',
      [{ daysSupply: 30, pickedUpDaysAgo: 90, maintenance: true }],
      [],
    ],
    [
      'refilled already (a later fill of the same Rx)',
      [
        { rxNumber: 'RX-A', fillNumber: 0, daysSupply: 30, pickedUpDaysAgo: 26 },
        { rxNumber: 'RX-A', fillNumber: 1, daysSupply: 30, readyDaysAgo: 0.5 },
      ],
      [],
    ],
    [
      'refilled under a new Rx of the same therapy',
      [
        {
          rxNumber: 'RX-B',
          daysSupply: 30,
          pickedUpDaysAgo: 40,
          maintenance: true,
          therapeuticClass: 'statin',
        },
        {
          rxNumber: 'RX-C',
          daysSupply: 30,
          pickedUpDaysAgo: 5,
          maintenance: true,
          therapeuticClass: 'statin',
        },
      ],
      [],
    ],
    [
      'a later fill of the same Rx returned to stock is no refill',
      [
        { rxNumber: 'RX-A', fillNumber: 0, daysSupply: 30, pickedUpDaysAgo: 26 },
        { rxNumber: 'RX-A', fillNumber: 1, daysSupply: 30, readyDaysAgo: 0.5, status: 'returned_to_stock' },
      ],
      ['refill_due'],
    ],
    [
      'a later fill of the same therapy cancelled is no refill',
      [
        { rxNumber: 'RX-B', daysSupply: 30, pickedUpDaysAgo: 26, therapeuticClass: 'statin' },
        {
          rxNumber: 'RX-C',
          daysSupply: 30,
          readyDaysAgo: 0.5,
          therapeuticClass: 'statin',
          status: 'cancelled',
        },
      ],
      ['refill_due'],
    ],
    [
      'returned to stock: nothing',
      [{ daysSupply: 30, pickedUpDaysAgo: 26, status: 'returned_to_stock' }],
      [],
    ],
    ['ready 1 day: nothing yet', [{ readyDaysAgo: 1 }], []],
    ['ready 2 days: first pickup reminder', [{ readyDaysAgo: 2 }], ['unclaimed_pickup#1']],
    ['ready 6 days: second (no catch-up burst)', [{ readyDaysAgo: 6 }], ['unclaimed_pickup#2']],
    ['ready 9 days: last reminder', [{ readyDaysAgo: 9 }], ['unclaimed_pickup#3']],
    ['ready 10 days: return-to-stock day, no reminder', [{ readyDaysAgo: 10 }], []],
  ])('%s', async (_, fills, expected) => {
    expect(await notificationsFor(fills)).toEqual(expected);
  });

  it("counts days in the patient's local calendar, not UTC", async () => {
    // Picked up 23:30 on Feb 6 in New York (04:30 UTC on Feb 7): run-out is Mar 8 locally, so on Mar 3 (5 days
    // before) the reminder is due; a UTC date would say Mar 9 and wait a day.
    const at = new Date('2026-03-03T15:00:00Z');
    expect(
      await notificationsFor([{ daysSupply: 30, pickedUpAt: new Date('2026-02-07T04:30:00Z') }], at),
    ).toEqual(['refill_due']);
  });

  it('is correct across the spring DST change', async () => {
    // Clocks go forward on 2026-03-08 in New York; a 30-day supply picked up Feb 7 runs out Mar 9.
    const at = new Date('2026-03-04T13:00:00Z');
    expect(
      await notificationsFor([{ daysSupply: 30, pickedUpAt: new Date('2026-02-07T17:00:00Z') }], at),
    ).toEqual(['refill_due']);
    const dayBefore = new Date('2026-03-03T13:00:00Z');
    expect(
      await notificationsFor([{ daysSupply: 30, pickedUpAt: new Date('2026-02-07T17:00:00Z') }], dayBefore),
    ).toEqual([]);
  });

  it('reminds every fill in the window once, whichever part of the refill statement finds it', async () => {
    // One fill a day, run-outs from 15 days ago to 15 days ahead; due from 5 days before run-out (lead) to
    // 7 after (grace): picked up 25 to 37 days ago. The statement runs in parts by run-out day.
    clock.set(new Date('2026-03-15T15:00:00Z'));
    const patient = await t.given.patient(pharmacy);
    const fills = new Map<string, number>();
    for (let daysAgo = 15; daysAgo <= 45; daysAgo++) {
      const { id } = await t.given.fill(patient, {
        now: clock.now(),
        daysSupply: 30,
        pickedUpDaysAgo: daysAgo,
        drugName: `Drug ${daysAgo}`,
      });
      fills.set(id, daysAgo);
    }
    await scans.scan();
    const rows = await t.db.query<{ fill_ids: string[]; kind: string }[]>(
      `SELECT fill_ids, kind FROM notifications WHERE patient_id = $1`,
      [patient.id],
    );
    expect(rows.every((r) => r.kind === 'refill_due')).toBe(true);
    expect(rows.map((r) => fills.get(r.fill_ids[0])).sort((a, b) => a! - b!)).toEqual(
      Array.from({ length: 13 }, (_, i) => 25 + i),
    );
  });

  it("honours a pharmacy's own lead days and pickup cadence", async () => {
    const custom = await t.given.pharmacy({
      name: 'Custom',
      smsFrom: '+14155550111',
      settings: { refillLeadDays: 10, pickupReminderDays: [1, 3], returnToStockDay: 5 },
    });
    expect(await notificationsFor([{ daysSupply: 30, pickedUpDaysAgo: 21 }], clock.now(), custom)).toEqual([
      'refill_due',
    ]);
    expect(await notificationsFor([{ readyDaysAgo: 1 }], clock.now(), custom)).toEqual([
      'unclaimed_pickup#1',
    ]);
    expect(await notificationsFor([{ readyDaysAgo: 5 }], clock.now(), custom)).toEqual([]);
  });

  it('never creates a second notification for the same event, and enqueues only new ones', async () => {
    clock.set(new Date('2026-03-15T15:00:00Z'));
    const patient = await t.given.patient(pharmacy);
    await t.given.fill(patient, { now: clock.now(), daysSupply: 30, pickedUpDaysAgo: 26 });
    const admin = await t.given.apiKey('admin');
    const first = await request(t.http).post('/v1/scans').set('Authorization', `Bearer ${admin}`).expect(200);
    expect(first.body.created.refill_due).toBeGreaterThanOrEqual(1);
    const second = await request(t.http)
      .post('/v1/scans')
      .set('Authorization', `Bearer ${admin}`)
      .expect(200);
    expect(second.body).toEqual({
      created: { refill_due: 0, renewal_needed: 0, unclaimed_pickup: 0, adherence_gap: 0 },
    });
    const [{ count }] = await t.db.query(
      `SELECT count(*)::int AS count FROM notifications WHERE patient_id = $1`,
      [patient.id],
    );
    expect(count).toBe(1);
    const [{ id }] = await t.db.query(`SELECT id FROM notifications WHERE patient_id = $1`, [patient.id]);
    const queue = new Queue(QueueName.Delivery, {
      connection: { host: '127.0.0.1', port: 6379 },
      prefix: t.config.queue.prefix,
    });
    expect((await queue.getJob(id))?.data).toEqual({ notificationId: id });
    await queue.close();
  });

  it('runs two scans at once without duplicates', async () => {
    clock.set(new Date('2026-03-15T15:00:00Z'));
    const patient = await t.given.patient(pharmacy);
    for (let i = 0; i < 5; i++)
      await t.given.fill(patient, { now: clock.now(), daysSupply: 30, pickedUpDaysAgo: 26 });
    const results = await Promise.all([scans.scan(), scans.scan(), scans.scan()]);
    const [{ count }] = await t.db.query(
      `SELECT count(*)::int AS count FROM notifications WHERE patient_id = $1`,
      [patient.id],
    );
    expect(count).toBe(5);
    expect(results.reduce((sum, r) => sum + r.refill_due, 0)).toBeGreaterThanOrEqual(5);
  });

  describe('properties (fast-check, real database)', () => {
    const fillArb = fc.record({
      daysSupply: fc.oneof(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 90 })),
      pickedUpDaysAgo: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 130 })),
      refillsRemaining: fc.integer({ min: 0, max: 2 }),
      maintenance: fc.boolean(),
    });
    const scanAt = fc.date({ min: new Date('2026-01-01T00:00:00Z'), max: new Date('2027-12-31T00:00:00Z') });

    it('never makes a reminder due before its fill, never twice, and never brings a cancelled one back', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fillArb, { minLength: 1, maxLength: 4 }), scanAt, async (fills, at) => {
          clock.set(at);
          const patient = await t.given.patient(pharmacy);
          for (const fill of fills) await t.given.fill(patient, { now: at, ...fill });
          await scans.scan();
          const made = await t.db.query<{ id: string; kind: string; service_date: string; today: string }[]>(
            `SELECT n.id, n.kind,
                    to_char(coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE 'America/New_York', 'YYYY-MM-DD') AS service_date,
                    to_char($2::timestamptz AT TIME ZONE 'America/New_York', 'YYYY-MM-DD') AS today
             FROM notifications n JOIN fills f ON f.id = n.fill_ids[1] WHERE n.patient_id = $1`,
            [patient.id, at],
          );
          for (const n of made) expect(n.today > n.service_date).toBe(true);

          await scans.scan();
          const [{ count }] = await t.db.query(
            `SELECT count(*)::int AS count FROM notifications WHERE patient_id = $1`,
            [patient.id],
          );
          expect(count).toBe(made.length);

          await t.db.query(`UPDATE notifications SET state = 'cancelled' WHERE patient_id = $1`, [
            patient.id,
          ]);
          await scans.scan();
          const after = await t.db.query(`SELECT state FROM notifications WHERE patient_id = $1`, [
            patient.id,
          ]);
          expect(after).toHaveLength(made.length);
          expect(after.every((n: { state: string }) => n.state === 'cancelled')).toBe(true);
        }),
        { numRuns: 40 },
      );
    }, 60000);
  });

  it('puts adherence outreach to patients at risk first', async () => {
    const at = new Date('2026-09-15T15:00:00Z');
    clock.set(at);
    const other = await t.given.pharmacy({
      name: 'Order',
      smsFrom: '+14155550140',
      timezone: 'America/New_York',
    });
    const steady = await t.given.patient(other);
    const lapsed = await t.given.patient(other);
    // Steady: a year of on-time monthly fills, then a gap. Lapsed: two fills months apart, then a gap.
    for (let month = 12; month >= 2; month--) {
      await t.given.fill(steady, {
        now: at,
        rxNumber: 'S',
        fillNumber: 12 - month,
        daysSupply: 30,
        pickedUpDaysAgo: month * 30 + 10,
        maintenance: true,
        therapeuticClass: 'statin',
      });
    }
    await t.given.fill(lapsed, {
      now: at,
      rxNumber: 'L',
      fillNumber: 0,
      daysSupply: 30,
      pickedUpDaysAgo: 200,
      maintenance: true,
      therapeuticClass: 'statin',
    });
    await t.given.fill(lapsed, {
      now: at,
      rxNumber: 'L',
      fillNumber: 1,
      daysSupply: 30,
      pickedUpDaysAgo: 40,
      maintenance: true,
      therapeuticClass: 'statin',
    });
    await t.given.fill(steady, {
      now: at,
      rxNumber: 'S',
      fillNumber: 11,
      daysSupply: 30,
      pickedUpDaysAgo: 40,
      maintenance: true,
      therapeuticClass: 'statin',
    });
    const enqueued: string[] = [];
    const queue = t.app.get(NotificationQueue);
    const original = queue.enqueue.bind(queue);
    queue.enqueue = async (items, now) => {
      enqueued.push(...items.map((i) => i.notificationId));
      return original(items, now);
    };
    try {
      await scans.scan(other.id);
    } finally {
      queue.enqueue = original;
    }
    const gaps = await t.db.query<{ id: string; patient_id: string }[]>(
      `SELECT id, patient_id FROM notifications WHERE pharmacy_id = $1 AND kind = 'adherence_gap'`,
      [other.id],
    );
    expect(gaps).toHaveLength(2);
    const order = enqueued
      .filter((id) => gaps.some((g) => g.id === id))
      .map((id) => gaps.find((g) => g.id === id)?.patient_id);
    expect(order).toEqual([lapsed.id, steady.id]);
  });

  it('is open to admins only', async () => {
    const staff = await t.given.apiKey('staff', pharmacy);
    await request(t.http).post('/v1/scans').set('Authorization', `Bearer ${staff}`).expect(403);
  });
});
