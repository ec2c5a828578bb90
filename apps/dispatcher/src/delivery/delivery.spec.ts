import request from 'supertest';
import twilio from 'twilio';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { SANDBOX_AUTH_TOKEN } from '@rxnotify/common/config/config';
import type { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import type { Sandbox } from '../../../../tools/twilio-sandbox/src/sandbox';
import type { PharmacyFixture } from '../../../../test/helpers/given';
import { waitFor } from '../../../../test/helpers/wait';
import { startDispatcherWithSandbox, type DispatcherUnderTest } from '../../../../test/helpers/dispatcher';
import { Metrics } from '@rxnotify/common/metrics/metrics.service';
import { SmsProvider } from '@rxnotify/common/twilio/sms-provider';
import { StatusService } from '../webhooks/status.service';
import { DeliveryService } from './delivery.service';
import { SendRateLimiter } from './send-rate-limiter';

describe('delivery (dispatcher, real Postgres, Redis and the Twilio sandbox over HTTP)', () => {
  let t: DispatcherUnderTest;
  let sandbox: Sandbox;
  let pharmacy: PharmacyFixture;
  let staff: string;
  let queue: NotificationQueue;
  let port: number;
  let phoneCounter = 2600;
  // Noon in New York: inside the pharmacy's sending window. Quiet hours have their own tests.
  const clock = new FakeClock(new Date('2026-06-10T16:00:00Z'));

  const nextPhone = () => `+1415555${String(phoneCounter++).padStart(4, '0')}`;
  /** A webhook signed as Twilio signs it, for the URL the dispatcher checks against. */
  const signedPost = (path: string, params: Record<string, string>) =>
    request(t.http)
      .post(path)
      .type('form')
      .set(
        'X-Twilio-Signature',
        twilio.getExpectedTwilioSignature(SANDBOX_AUTH_TOKEN, `http://127.0.0.1:${port}${path}`, params),
      )
      .send(params);
  const notification = (id: string) =>
    t.db
      .query(`SELECT state, reason, channel FROM notifications WHERE id = $1`, [id])
      .then((rows) => rows[0]);
  const settled = (id: string) =>
    waitFor(`notification ${id} to settle`, async () => {
      const n = await notification(id);
      return n && !['pending', 'sending'].includes(n.state) ? n : null;
    });

  beforeAll(async () => {
    t = await startDispatcherWithSandbox({ clock });
    sandbox = t.sandbox;
    port = Number(new URL(t.url).port);
    queue = t.queue;
    pharmacy = await t.given.pharmacy({ name: 'Main Street Pharmacy' });
    staff = await t.given.apiKey('staff', pharmacy);
  });
  afterAll(() => t.close());

  it('texts an opted-in patient once, records intent and result, and follows callbacks to delivered', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);

    const delivered = await waitFor('delivered', async () =>
      (await notification(notificationId)).state === 'delivered' ? true : null,
    );
    expect(delivered).toBe(true);
    const sent = sandbox.messages().filter((m) => m.to === patient.phone);
    expect(sent).toHaveLength(1);
    expect(sent[0].from).toBe(pharmacy.smsFrom);
    expect(sent[0].body).toContain('Main Street Pharmacy');
    expect(sent[0].body).toMatch(/Reply STOP to opt out\.$/);
    expect(sent[0].body).not.toMatch(/Atorvastatin/i);

    const view = await request(t.http)
      .get(`/v1/notifications/${notificationId}`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(view.body).toMatchObject({
      kind: 'ready',
      state: 'delivered',
      channel: 'sms',
      patientId: patient.id,
    });
    expect(view.body.messages).toEqual([
      expect.objectContaining({ to: patient.phone, providerSid: sent[0].sid, status: 'delivered' }),
    ]);

    const attempts = await t.db.query(
      `SELECT a.event, a.status FROM message_attempts a JOIN messages m ON m.id = a.message_id WHERE m.notification_id = $1 ORDER BY a.id`,
      [notificationId],
    );
    expect(attempts.map((a: { event: string; status: string }) => `${a.event}:${a.status}`)).toEqual(
      expect.arrayContaining(['intent:intent', 'result:queued', 'status:delivered']),
    );
    expect(attempts[0]).toEqual({ event: 'intent', status: 'intent' });
    const [stored] = await t.db.query(`SELECT to_enc, body_enc FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    expect(JSON.stringify(stored)).not.toContain(patient.phone.slice(2));
    expect(JSON.stringify(stored)).not.toContain('Main Street');
  });

  it('suppresses a patient who never consented (unknown means no) and sends nothing', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: [] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toMatchObject({ state: 'suppressed', reason: 'no_consent' });
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(0);
  });

  it('suppresses an opted-out patient', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    await t.db.query(`UPDATE consents SET status = 'opted_out' WHERE patient_id = $1`, [patient.id]);
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toMatchObject({ state: 'suppressed', reason: 'opted_out' });
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(0);
  });

  it('cancels a ready notice whose fill was picked up meanwhile', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient, { fillStatus: 'picked_up' });
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toMatchObject({ state: 'cancelled', reason: 'stale:picked_up' });
  });

  it('names the return-to-stock date in the last pickup reminder', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    // Ready at 01:00 UTC on Nov 21 is still Nov 20 in New York; day 10 is Nov 30.
    const { notificationId } = await t.given.notice(patient, {
      kind: 'unclaimed_pickup',
      step: 3,
      readyAt: new Date('2026-11-21T01:00:00Z'),
    });
    await queue.enqueue([{ notificationId }]);
    const [text] = await waitFor('the reminder', () => {
      const sent = sandbox.messages().filter((m) => m.to === patient.phone);
      return sent.length ? sent : null;
    });
    expect(text.body).toContain('Nov 30');
  });

  it('cancels a refill reminder when the patient has refilled since', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient, {
      kind: 'refill_due',
      fillStatus: 'picked_up',
      rxNumber: 'RX-77',
    });
    await t.given.fill(patient, { rxNumber: 'RX-77', fillNumber: 1, readyDaysAgo: 0 });
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toMatchObject({ state: 'cancelled', reason: 'stale:refilled' });
  });

  it('records a carrier opt-out (21610) as an SMS opt-out', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'error', code: 21610 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toMatchObject({ state: 'suppressed', reason: 'opted_out' });
    const [consent] = await t.db.query(
      `SELECT status, source FROM consents WHERE patient_id = $1 AND channel = 'sms'`,
      [patient.id],
    );
    expect(consent).toEqual({ status: 'opted_out', source: 'carrier' });
  });

  it('fails an invalid number at once and lists it for staff follow-up', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'error', code: 21211 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toMatchObject({
      state: 'failed',
      reason: 'the number is not a valid phone number',
    });
    const followUps = await request(t.http)
      .get('/v1/follow-ups')
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(followUps.body.map((n: { id: string }) => n.id)).toContain(notificationId);
  });

  it('lists a known landline without voice consent for staff follow-up instead of suppressing it', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    await t.db.query(`UPDATE patients SET line_type = 'landline' WHERE id = $1`, [patient.id]);
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    expect(await settled(notificationId)).toEqual({
      state: 'failed',
      reason: 'landline without voice consent: call the patient',
      channel: null,
    });
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(0);
    expect(sandbox.calls().filter((c) => c.to === patient.phone)).toHaveLength(0);
    const followUps = await request(t.http)
      .get('/v1/follow-ups')
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(followUps.body).toContainEqual(
      expect.objectContaining({
        id: notificationId,
        state: 'failed',
        reason: 'landline without voice consent: call the patient',
      }),
    );
  });

  it('retries a 429 and sends exactly once', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'http429', times: 1 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('sent after retry', async () =>
      ['sent', 'delivered'].includes((await notification(notificationId)).state) ? true : null,
    );
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(1);
  });

  it('a worker stalled past its lease writes no intent once another has re-claimed: sent once', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    const first = t.app.get(DeliveryService);
    // A second dispatcher replica (its own worker id) on the same database, provider and rate limiter.
    const second = new DeliveryService(
      t.db,
      t.config,
      t.keys,
      t.app.get(SmsProvider),
      clock,
      t.app.get(SendRateLimiter),
      t.app.get(Metrics),
    );
    // The first worker claims, then stalls (here: in the rate limiter) past its lease.
    const rate = t.app.get(SendRateLimiter);
    let resume = () => undefined as void;
    let stalled = () => undefined as void;
    const isStalled = new Promise<void>((resolve) => (stalled = resolve));
    jest.spyOn(rate, 'acquire').mockImplementationOnce(() => {
      stalled();
      return new Promise<void>((resolve) => (resume = resolve));
    });
    try {
      const firstOutcome = first.deliver(notificationId);
      await isStalled;
      await t.db.query(`UPDATE notifications SET lease_expires_at = $2 WHERE id = $1`, [
        notificationId,
        new Date(clock.now().getTime() - 1000),
      ]);
      expect(await second.deliver(notificationId)).toMatchObject({ outcome: 'sent' });

      resume();
      expect(await firstOutcome).toEqual({ outcome: 'skipped', reason: 'lease_lost' });
    } finally {
      jest.restoreAllMocks();
    }
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(1);
    const [{ n }] = await t.db.query(`SELECT count(*)::int AS n FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    expect(n).toBe(1);
    expect(['sent', 'delivered']).toContain((await notification(notificationId)).state);
  });

  it('among concurrent sends written together, only the one whose lease was taken over is refused', async () => {
    const patients = await Promise.all(
      [0, 1, 2].map(() => t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] })),
    );
    const ids = await Promise.all(patients.map(async (p) => (await t.given.notice(p)).notificationId));
    const rate = t.app.get(SendRateLimiter);
    const resumes: (() => void)[] = [];
    jest
      .spyOn(rate, 'acquire')
      .mockImplementation(() => new Promise<void>((resolve) => resumes.push(resolve)));
    try {
      const outcomes = Promise.all(ids.map((id) => t.app.get(DeliveryService).deliver(id)));
      await waitFor('all three stalled', async () => (resumes.length === 3 ? true : null));
      // The middle one's lease runs out and another worker finishes it (here: marks it sent).
      await t.db.query(
        `UPDATE notifications SET state = 'sent', lease_owner = 'other-worker', lease_expires_at = NULL WHERE id = $1`,
        [ids[1]],
      );
      for (const resume of resumes) resume();
      expect(await outcomes).toEqual([
        expect.objectContaining({ outcome: 'sent' }),
        { outcome: 'skipped', reason: 'lease_lost' },
        expect.objectContaining({ outcome: 'sent' }),
      ]);
    } finally {
      jest.restoreAllMocks();
    }
    const texts = patients.map((p) => sandbox.messages().filter((m) => m.to === p.phone).length);
    expect(texts).toEqual([1, 0, 1]);
  });

  it('a worker whose lease ran out, not yet re-claimed, sends nothing and gives the notification back', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    const rate = t.app.get(SendRateLimiter);
    jest.spyOn(rate, 'acquire').mockImplementationOnce(async () => {
      await t.db.query(`UPDATE notifications SET lease_expires_at = $2 WHERE id = $1`, [
        notificationId,
        new Date(clock.now().getTime() - 1000),
      ]);
    });
    try {
      await expect(t.app.get(DeliveryService).deliver(notificationId)).rejects.toThrow(/lease ran out/);
    } finally {
      jest.restoreAllMocks();
    }
    expect(sandbox.messages().filter((m) => m.to === patient.phone)).toHaveLength(0);
    expect((await notification(notificationId)).state).toBe('pending');
    const [{ n }] = await t.db.query(`SELECT count(*)::int AS n FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    expect(n).toBe(0);
  });

  it('refuses forged status callbacks and never lets a late status overwrite a final one', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('delivered', async () =>
      (await notification(notificationId)).state === 'delivered' ? true : null,
    );
    const [message] = await t.db.query(`SELECT id, provider_sid FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    const path = `/webhooks/twilio/status?attemptId=${message.id}`;
    const params = { MessageSid: message.provider_sid, MessageStatus: 'sent' };

    await request(t.http).post(path).type('form').send(params).expect(403);
    await request(t.http)
      .post(path)
      .type('form')
      .set('X-Twilio-Signature', 'forged')
      .send(params)
      .expect(403);
    await signedPost(path, params).expect(200);
    const [after] = await t.db.query(`SELECT status FROM messages WHERE id = $1`, [message.id]);
    expect(after.status).toBe('delivered');

    // Signed but odd: no form at all changes nothing (was a 500); a field given twice is a 400 naming it.
    const signature = (form: Record<string, string | string[]>) =>
      twilio.getExpectedTwilioSignature(
        SANDBOX_AUTH_TOKEN,
        `http://127.0.0.1:${port}${path}`,
        form as Record<string, string>,
      );
    await request(t.http).post(path).set('X-Twilio-Signature', signature({})).expect(200);
    const twice = { MessageSid: message.provider_sid, MessageStatus: ['failed', 'undelivered'] };
    const refused = await request(t.http)
      .post(path)
      .type('form')
      .set('X-Twilio-Signature', signature(twice))
      .send(`MessageSid=${message.provider_sid}&MessageStatus=failed&MessageStatus=undelivered`)
      .expect(400);
    expect(refused.body.message).toEqual(['MessageStatus must be given once']);
    const [still] = await t.db.query(`SELECT status FROM messages WHERE id = $1`, [message.id]);
    expect(still.status).toBe('delivered');
  });

  it('refuses a forged answering-machine verdict, and ignores one about a text', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('delivered', async () =>
      (await notification(notificationId)).state === 'delivered' ? true : null,
    );
    const [message] = await t.db.query(`SELECT id FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    const path = `/webhooks/twilio/voice/amd?attemptId=${message.id}`;
    const params = { CallSid: `CA${'0'.repeat(32)}`, AnsweredBy: 'machine_end_beep' };
    await request(t.http).post(path).type('form').send(params).expect(403);
    // A text has no call to update: the verdict changes nothing, is not logged, and Twilio gets its 200.
    await signedPost(path, params).expect(200);
    expect(await notification(notificationId)).toMatchObject({ state: 'delivered', channel: 'sms' });
    const logged = await t.db.query(
      `SELECT 1 FROM message_attempts WHERE event = 'answered_by' AND message_id = $1`,
      [message.id],
    );
    expect(logged).toEqual([]);
  });

  it('applies a burst of callbacks that arrive together in their order, each logged once', async () => {
    const patients = await Promise.all(
      [0, 1].map(() => t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] })),
    );
    const messageIds: string[] = [];
    for (const patient of patients) {
      const { notificationId } = await t.given.notice(patient);
      await t.db.query(`UPDATE notifications SET state = 'sent' WHERE id = $1`, [notificationId]);
      messageIds.push(await t.given.intentMessage(patient, notificationId, { from: pharmacy.smsFrom }));
    }
    const sid = (n: number) => `SM${String(n).padStart(32, '0')}`;
    const statuses = t.app.get(StatusService);
    // All in one tick, so they share statements: the first message's three statuses need three in a row.
    const applied = await Promise.all([
      statuses.apply(messageIds[0], 'sent', sid(1), undefined),
      statuses.apply(messageIds[1], 'undelivered', sid(2), '30003'),
      statuses.apply(messageIds[0], 'delivered', sid(1), undefined),
      statuses.apply(messageIds[0], 'sent', sid(1), undefined),
    ]);
    expect(applied).toEqual([true, true, true, false]);
    const attempts = await t.db.query<{ message_id: string; status: string }[]>(
      `SELECT message_id, status FROM message_attempts WHERE message_id = ANY($1::uuid[]) ORDER BY id`,
      [messageIds],
    );
    expect(attempts.filter((a) => a.message_id === messageIds[0]).map((a) => a.status)).toEqual([
      'sent',
      'delivered',
    ]);
    expect(attempts.filter((a) => a.message_id === messageIds[1]).map((a) => a.status)).toEqual([
      'undelivered',
    ]);
    const states = await t.db.query<{ state: string; reason: string | null }[]>(
      `SELECT n.state, n.reason FROM notifications n JOIN messages m ON m.notification_id = n.id
       WHERE m.id = ANY($1::uuid[]) ORDER BY array_position($1::uuid[], m.id)`,
      [messageIds],
    );
    expect(states[0].state).toBe('delivered');
    expect(states[1].state).toBe('failed');
    expect(states[1].reason).toBe('the phone is switched off or out of reach'); // 30003, in words
  });

  it("answers only within the key's pharmacy and role", async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: [] });
    const { notificationId } = await t.given.notice(patient);
    const other = await t.given.pharmacy({ name: 'Other', smsFrom: '+14155550102' });
    const otherStaff = await t.given.apiKey('staff', other);
    const integration = await t.given.apiKey('integration', pharmacy);
    await request(t.http)
      .get(`/v1/notifications/${notificationId}`)
      .set('Authorization', `Bearer ${otherStaff}`)
      .expect(404);
    await request(t.http)
      .get(`/v1/notifications/${notificationId}`)
      .set('Authorization', `Bearer ${integration}`)
      .expect(403);
    await request(t.http).get(`/v1/notifications/${notificationId}`).expect(401);
    await request(t.http)
      .get(`/v1/notifications?state=bogus`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(422);
    const list = await request(t.http)
      .get(`/v1/notifications?patientId=${patient.id}`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(list.body.map((n: { id: string }) => n.id)).toEqual([notificationId]);
  });
});
