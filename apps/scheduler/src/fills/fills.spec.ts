import type { Queue } from 'bullmq';
import request from 'supertest';
import type { TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import {
  hoursAgo,
  startSchedulerWithPatient,
  type SchedulerUnderTest,
} from '../../../../test/helpers/scheduler';

describe('fills (scheduler, real Postgres and Redis)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let patient: PatientFixture;
  let staff: string;
  let queue: Queue;

  let scheduler: SchedulerUnderTest;

  beforeAll(async () => {
    scheduler = await startSchedulerWithPatient();
    ({ t, pharmacy, patient, staff, queue } = scheduler);
  });
  afterAll(() => scheduler.close());

  const fill = (overrides: Record<string, unknown> = {}) => ({
    pharmacyId: pharmacy.id,
    externalId: `F-${Math.random().toString(36).slice(2)}`,
    patientExternalId: patient.externalId,
    rxNumber: 'RX100',
    fillNumber: 0,
    drugName: 'Lisinopril 10 mg',
    quantity: 30,
    daysSupply: 30,
    refillsRemaining: 3,
    filledAt: hoursAgo(2),
    status: 'in_progress',
    ...overrides,
  });
  const post = (body: object, key = staff) =>
    request(t.http).post('/v1/fills').set('Authorization', `Bearer ${key}`).send(body);

  it('applies good fills and rejects bad ones alone, in input order, naming the field', async () => {
    const good = fill();
    const response = await post({
      fills: [
        good,
        fill({ daysSupply: 400 }),
        fill({ quantity: 0 }),
        fill({ refillsRemaining: -1 }),
        fill({ filledAt: new Date(Date.now() + 86400_000).toISOString() }),
        fill({ status: 'picked_up', readyAt: hoursAgo(1), pickedUpAt: hoursAgo(3) }),
        fill({ patientExternalId: 'nobody' }),
        'not an object',
      ],
    }).expect(200);
    const results = response.body.results;
    expect(results).toHaveLength(8);
    expect(results[0]).toMatchObject({
      externalId: good.externalId,
      outcome: 'created',
      id: expect.any(String),
    });
    const errors = results
      .slice(1)
      .map((r: { outcome: string; errors: string[] }) => [r.outcome, r.errors.join(' ')]);
    expect(errors).toEqual([
      ['rejected', expect.stringContaining('daysSupply')],
      ['rejected', expect.stringContaining('quantity')],
      ['rejected', expect.stringContaining('refillsRemaining')],
      ['rejected', expect.stringContaining('filledAt')],
      ['rejected', expect.stringContaining('pickedUpAt')],
      ['rejected', expect.stringContaining('patientExternalId')],
      ['rejected', expect.stringContaining('object')],
    ]);
    const [{ count }] = await t.db.query(`SELECT count(*)::int AS count FROM fills`);
    expect(count).toBe(1);
  });

  it('rejects alone a timestamp or text Postgres cannot read as sent, and stores a date alone as midnight UTC', async () => {
    const good = fill({ filledAt: '2025-05-01' });
    const response = await post({
      fills: [
        good,
        // Each passes @IsDateString({ strict: true }) but fails Postgres's timestamp input: once the whole batch.
        fill({ filledAt: '2025-05-01T10:00:00,5Z' }),
        fill({ patientExternalId: 'nobody', readyAt: '2025-W18-4', status: 'ready' }),
        fill({ externalId: 'F-\ud800' }),
        // Ready from now (no readyAt) but picked up before: the ready time would break the table's CHECK.
        fill({ status: 'ready', pickedUpAt: hoursAgo(3) }),
      ],
    }).expect(200);
    const results = response.body.results as { outcome: string; errors?: string[] }[];
    expect(results.map((r) => r.outcome)).toEqual([
      'created',
      'rejected',
      'rejected',
      'rejected',
      'rejected',
    ]);
    expect(results[4].errors).toEqual([
      'pickedUpAt is only allowed when status is picked_up (status is ready)',
    ]);
    expect(results[1].errors).toEqual([expect.stringMatching(/^filledAt must be an ISO 8601 date and time/)]);
    expect(results[2].errors).toEqual([expect.stringMatching(/^readyAt must be an ISO 8601 date and time/)]);
    expect(results[3].errors).toEqual([expect.stringMatching(/^externalId must be well-formed Unicode/)]);
    const [stored] = await t.db.query(`SELECT filled_at FROM fills WHERE external_id = $1`, [
      good.externalId,
    ]);
    expect((stored.filled_at as Date).toISOString()).toBe('2025-05-01T00:00:00.000Z');
  });

  it('treats a re-sent batch as no change', async () => {
    const batch = { fills: [fill(), fill()] };
    await post(batch).expect(200);
    const [before] = await t.db.query(`SELECT max(updated_at) AS at, count(*)::int AS n FROM fills`);
    const again = await post(batch).expect(200);
    expect(again.body.results.map((r: { outcome: string }) => r.outcome)).toEqual(['updated', 'updated']);
    const [after] = await t.db.query(`SELECT max(updated_at) AS at, count(*)::int AS n FROM fills`);
    expect(after).toEqual(before);
  });

  it('creates one ready notification when a fill becomes ready, and enqueues it by id only', async () => {
    const ready = fill({ status: 'ready', readyAt: hoursAgo(0.1) });
    const [result] = (await post({ fills: [ready] }).expect(200)).body.results;
    await post({ fills: [ready] }).expect(200);
    const notifications = await t.db.query(
      `SELECT id, kind, state FROM notifications WHERE $1 = ANY(fill_ids)`,
      [result.id],
    );
    expect(notifications).toEqual([{ id: expect.any(String), kind: 'ready', state: 'pending' }]);
    const job = await queue.getJob(notifications[0].id);
    expect(job?.data).toEqual({ notificationId: notifications[0].id });
  });

  it('notices a fill filled days ago and pushed as ready without readyAt, once, keeping when it became ready', async () => {
    // Filled three days ago, held for insurance, ready now: the PhMS sends no readyAt.
    const waited = fill({ status: 'in_progress', filledAt: hoursAgo(72) });
    const [created] = (await post({ fills: [waited] }).expect(200)).body.results;
    const pushedAt = Date.now();
    await post({ fills: [{ ...waited, status: 'ready' }] }).expect(200);
    const [stored] = await t.db.query(`SELECT ready_at, updated_at FROM fills WHERE id = $1`, [created.id]);
    expect(stored.ready_at.getTime()).toBeGreaterThanOrEqual(pushedAt - 1000);
    const notices = await t.db.query(`SELECT kind FROM notifications WHERE fill_ids = ARRAY[$1::uuid]`, [
      created.id,
    ]);
    expect(notices).toEqual([{ kind: 'ready' }]);

    // Re-sent the same way later: nothing changes, not even the time it became ready.
    await post({ fills: [{ ...waited, status: 'ready' }] }).expect(200);
    const [again] = await t.db.query(`SELECT ready_at, updated_at FROM fills WHERE id = $1`, [created.id]);
    expect(again).toEqual(stored);
  });

  it('gives the same notification for repeated ready clicks', async () => {
    const [created] = (await post({ fills: [fill()] }).expect(200)).body.results;
    const first = await request(t.http)
      .post(`/v1/fills/${created.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(202);
    const second = await request(t.http)
      .post(`/v1/fills/${created.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(202);
    expect(second.body.notificationId).toBe(first.body.notificationId);
    const [access] = await t.db.query(
      `SELECT action, patient_id FROM access_log WHERE action = 'fill.ready' LIMIT 1`,
    );
    expect(access).toEqual({ action: 'fill.ready', patient_id: patient.id });
  });

  it('notifies on a click for a fill imported as ready days ago, and refuses a click on a picked-up fill', async () => {
    const [old] = (
      await post({
        fills: [fill({ status: 'ready', filledAt: hoursAgo(80), readyAt: hoursAgo(72) })],
      }).expect(200)
    ).body.results;
    // The import was history: no notice for a fill ready three days ago.
    const before = await t.db.query(`SELECT id FROM notifications WHERE fill_ids = ARRAY[$1::uuid]`, [
      old.id,
    ]);
    expect(before).toEqual([]);
    const click = await request(t.http)
      .post(`/v1/fills/${old.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(202);
    const [notice] = await t.db.query(`SELECT id, kind FROM notifications WHERE fill_ids = ARRAY[$1::uuid]`, [
      old.id,
    ]);
    expect(notice).toEqual({ id: click.body.notificationId, kind: 'ready' });

    const [done] = (
      await post({
        fills: [fill({ status: 'picked_up', readyAt: hoursAgo(1.5), pickedUpAt: hoursAgo(1) })],
      }).expect(200)
    ).body.results;
    const logged = await t.db.query(`SELECT count(*)::int AS n FROM access_log`);
    const refused = await request(t.http)
      .post(`/v1/fills/${done.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(409);
    expect(refused.body.message ?? JSON.stringify(refused.body)).toMatch(/picked up/);
    expect(await t.db.query(`SELECT count(*)::int AS n FROM access_log`)).toEqual(logged);
    expect(
      await t.db.query(`SELECT id FROM notifications WHERE fill_ids = ARRAY[$1::uuid]`, [done.id]),
    ).toEqual([]);
  });

  it('marks ready a fill stored in progress with a pick-up time (before that was refused), dropping the time', async () => {
    const [stored] = (await post({ fills: [fill()] }).expect(200)).body.results;
    await t.db.query(`UPDATE fills SET picked_up_at = $2 WHERE id = $1`, [stored.id, hoursAgo(3)]);
    await request(t.http)
      .post(`/v1/fills/${stored.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(202);
    const [row] = await t.db.query(`SELECT status, picked_up_at FROM fills WHERE id = $1`, [stored.id]);
    expect(row).toEqual({ status: 'ready', picked_up_at: null });
  });

  it("holds ready notices for the pharmacy's coalescing window: 60 s by default, none at 0", async () => {
    // Seconds between the request and the notice's due time, and the delay of its job.
    const hold = async (store: PharmacyFixture, via: 'import' | 'click') => {
      const owner = store.id === pharmacy.id ? patient : await t.given.patient(store, { consent: ['sms'] });
      const key = store.id === pharmacy.id ? staff : await t.given.apiKey('staff', store);
      const base = { ...fill(), pharmacyId: store.id, patientExternalId: owner.externalId };
      const before = Date.now();
      let notificationId: string;
      if (via === 'import') {
        const [created] = (
          await post(
            { fills: [{ ...base, status: 'ready', readyAt: new Date().toISOString() }] },
            key,
          ).expect(200)
        ).body.results;
        [{ id: notificationId }] = await t.db.query(
          `SELECT id FROM notifications WHERE fill_ids = ARRAY[$1::uuid]`,
          [created.id],
        );
      } else {
        const [created] = (await post({ fills: [base] }, key).expect(200)).body.results;
        ({ notificationId } = (
          await request(t.http)
            .post(`/v1/fills/${created.id}/ready`)
            .set('Authorization', `Bearer ${key}`)
            .expect(202)
        ).body);
      }
      const [n] = await t.db.query(`SELECT due_at FROM notifications WHERE id = $1`, [notificationId]);
      const job = await queue.getJob(notificationId);
      return { dueIn: (n.due_at.getTime() - before) / 1000, delay: (job?.opts.delay ?? 0) / 1000 };
    };
    const defaults = await t.given.pharmacy({ name: 'Default Window Rx', smsFrom: '+14155550170' });
    for (const via of ['import', 'click'] as const) {
      const held = await hold(defaults, via);
      // Wide bounds: a loaded machine may take seconds between the request and the enqueue.
      expect(held.dueIn).toBeGreaterThanOrEqual(59);
      expect(held.dueIn).toBeLessThan(70);
      expect(held.delay).toBeGreaterThan(45);
      expect(held.delay).toBeLessThanOrEqual(60);
      const atOnce = await hold(pharmacy, via); // readyCoalesceSeconds: 0
      expect(atOnce.dueIn).toBeLessThan(2);
      expect(atOnce.delay).toBe(0);
    }
  });

  it('cancels the pending ready notice when the fill is picked up', async () => {
    const [created] = (await post({ fills: [fill()] }).expect(200)).body.results;
    const { notificationId } = (
      await request(t.http)
        .post(`/v1/fills/${created.id}/ready`)
        .set('Authorization', `Bearer ${staff}`)
        .expect(202)
    ).body;
    const pickup = await request(t.http)
      .post(`/v1/fills/${created.id}/pickup`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(pickup.body).toMatchObject({ status: 'picked_up', cancelledNotifications: 1 });
    const [n] = await t.db.query(`SELECT state, reason FROM notifications WHERE id = $1`, [notificationId]);
    expect(n).toEqual({ state: 'cancelled', reason: 'stale:picked_up' });
    await request(t.http)
      .post(`/v1/fills/${created.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(409);
  });

  it('cancels pending refill reminders when a later fill of the same Rx arrives', async () => {
    const [first] = (
      await post({
        fills: [fill({ rxNumber: 'RX-900', fillNumber: 0, status: 'picked_up', pickedUpAt: hoursAgo(1) })],
      }).expect(200)
    ).body.results;
    const [{ id: reminder }] = await t.db.query(
      `INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key) VALUES ($1, $2, 'refill_due', ARRAY[$3::uuid], $4) RETURNING id`,
      [pharmacy.id, patient.id, first.id, `refill_due:${first.id}`],
    );
    await post({ fills: [fill({ rxNumber: 'RX-900', fillNumber: 1 })] }).expect(200);
    const [n] = await t.db.query(`SELECT state, reason FROM notifications WHERE id = $1`, [reminder]);
    expect(n).toEqual({ state: 'cancelled', reason: 'stale:refilled' });
  });

  it('refuses other pharmacies, wrong roles, bad ids and oversized batches', async () => {
    const other = await t.given.pharmacy({ name: 'Elsewhere', smsFrom: '+14155550101' });
    const otherStaff = await t.given.apiKey('staff', other);
    const auditor = await t.given.apiKey('auditor', pharmacy);
    const [created] = (await post({ fills: [fill()] }).expect(200)).body.results;
    await request(t.http)
      .post(`/v1/fills/${created.id}/ready`)
      .set('Authorization', `Bearer ${otherStaff}`)
      .expect(404);
    const [rejected] = (await post({ fills: [fill()] }, otherStaff).expect(200)).body.results;
    expect(rejected).toMatchObject({ outcome: 'rejected', errors: ['pharmacyId not found'] });
    await post({ fills: [fill()] }, auditor).expect(403);
    await request(t.http)
      .post('/v1/fills')
      .send({ fills: [fill()] })
      .expect(401);
    await request(t.http)
      .post('/v1/fills/not-a-uuid/ready')
      .set('Authorization', `Bearer ${staff}`)
      .expect(400);
    const tooMany = await post({ fills: Array.from({ length: 10_001 }, () => ({})) }).expect(422);
    expect(JSON.stringify(tooMany.body.message)).toContain('fills');
    await post({ notFills: [] }).expect(422);
    await request(t.http)
      .post('/v1/fills')
      .set('Authorization', `Bearer ${staff}`)
      .set('Content-Type', 'application/json')
      .send('{"fills": [')
      .expect(400);
  });
});
