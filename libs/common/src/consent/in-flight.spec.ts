import { ConsentApiModule } from '../../../../apps/consent-api/src/consent-api.module';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { PROVIDER_REQUEST_TIMEOUT_MS, TWILIO_WEBHOOK_TIMEOUT_MS } from '../twilio/sms-provider';
import { IN_FLIGHT_WAIT_MS, waitForInFlightSends } from './in-flight';

describe('waiting for sends in flight before acknowledging an opt-out (real Postgres)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let phone = 6100;

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config));
    pharmacy = await t.given.pharmacy({ smsFrom: '+14155550177' });
  });
  afterAll(() => t.close());

  /** A patient with one text written at `intent`, its provider call started `ageMs` ago. */
  const sending = async (ageMs = 0): Promise<{ patient: PatientFixture; messageId: string }> => {
    const patient = await t.given.patient(pharmacy, { phone: `+1415555${phone++}`, consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    const [{ at }] = await t.db.query<{ at: Date }[]>(`SELECT now() - make_interval(secs => $1) AS at`, [
      ageMs / 1000,
    ]);
    const messageId = await t.given.intentMessage(patient, notificationId, { createdAt: at });
    return { patient, messageId };
  };
  /** What the dispatcher records when the provider call ends. */
  const result = async (messageId: string, status: 'queued' | 'no_answer') => {
    if (status === 'queued')
      await t.db.query(`UPDATE messages SET status = 'queued' WHERE id = $1`, [messageId]);
    await t.db.query(
      `INSERT INTO message_attempts (message_id, notification_id, event, status)
       SELECT id, notification_id, 'result', $2 FROM messages WHERE id = $1`,
      [messageId, status],
    );
  };

  it('waits longer than a provider call may take, and answers before Twilio gives up on the webhook', () => {
    expect(IN_FLIGHT_WAIT_MS).toBeGreaterThan(PROVIDER_REQUEST_TIMEOUT_MS);
    expect(IN_FLIGHT_WAIT_MS).toBeLessThan(TWILIO_WEBHOOK_TIMEOUT_MS - 1_000);
  });

  it('gives up (false) while an intent has no result, and returns as soon as its result is recorded', async () => {
    const { patient, messageId } = await sending();
    expect(await waitForInFlightSends(t.db, [patient.id], 'sms', 300)).toBe(false);
    // Only the patient's own channel counts.
    expect(await waitForInFlightSends(t.db, [patient.id], 'voice', 300)).toBe(true);

    const started = Date.now();
    setTimeout(() => void result(messageId, 'queued'), 300);
    expect(await waitForInFlightSends(t.db, [patient.id], 'sms', 5_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('keeps waiting on a call that timed out until the provider timeout has passed since its intent', async () => {
    // Timed out (or its connection dropped) a moment ago: the request may still reach the provider.
    const recent = await sending(1_000);
    await result(recent.messageId, 'no_answer');
    expect(await waitForInFlightSends(t.db, [recent.patient.id], 'sms', 300)).toBe(false);

    // Its intent older than the provider's timeout: that request can no longer land.
    const old = await sending(PROVIDER_REQUEST_TIMEOUT_MS + 1_000);
    await result(old.messageId, 'no_answer');
    expect(await waitForInFlightSends(t.db, [old.patient.id], 'sms', 300)).toBe(true);
  });
});
