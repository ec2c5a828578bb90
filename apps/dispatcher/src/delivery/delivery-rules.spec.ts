import type Redis from 'ioredis';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { REDIS } from '@rxnotify/common/redis';
import type { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import type { Queue } from 'bullmq';
import type { Sandbox } from '../../../../tools/twilio-sandbox/src/sandbox';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { waitFor } from '../../../../test/helpers/wait';
import { startDispatcherWithSandbox, type DispatcherUnderTest } from '../../../../test/helpers/dispatcher';
import { VoicemailService } from '../webhooks/voicemail.service';

/** The delivery rules end to end through the real queue and the Twilio sandbox, with an injected clock. */
describe('delivery policy (quiet hours, caps, coalescing, channels, provider faults)', () => {
  const clock = new FakeClock(new Date('2026-06-10T16:00:00Z')); // noon in New York
  let t: DispatcherUnderTest;
  let sandbox: Sandbox;
  let queue: NotificationQueue;
  let raw: Queue;
  let pharmacy: PharmacyFixture;
  let phoneCounter = 3100;
  const nextPhone = () => `+1415555${String(phoneCounter++).padStart(4, '0')}`;
  const state = (id: string) =>
    t.db
      .query(`SELECT state, reason, scheduled_for, channel FROM notifications WHERE id = $1`, [id])
      .then((r) => r[0]);
  const textsTo = (p: PatientFixture) => sandbox.messages().filter((m) => m.to === p.phone);
  const callsTo = (p: PatientFixture) => sandbox.calls().filter((c) => c.to === p.phone);
  /** The answering-machine verdicts in a notice's attempt log. */
  const verdicts = (id: string): Promise<{ status: string; provider_sid: string }[]> =>
    t.db.query(
      `SELECT a.status, a.provider_sid FROM message_attempts a JOIN messages m ON m.id = a.message_id
       WHERE m.notification_id = $1 AND a.event = 'answered_by'`,
      [id],
    );
  const settledState = (id: string) =>
    waitFor(`notification ${id} to settle`, async () => {
      const n = await state(id);
      return n && !['pending', 'sending'].includes(n.state) ? n : null;
    });

  /** Moves our clock and lets BullMQ run what became due by it. */
  async function advanceTo(when: Date) {
    clock.set(when);
    for (const job of await raw.getDelayed()) {
      const [n] = await t.db.query(`SELECT scheduled_for FROM notifications WHERE id = $1`, [
        job.data.notificationId,
      ]);
      if (n?.scheduled_for && n.scheduled_for <= when) await job.promote();
    }
  }

  beforeAll(async () => {
    t = await startDispatcherWithSandbox({ clock });
    ({ sandbox, queue, jobs: raw } = t);
    pharmacy = await t.given.pharmacy({
      name: 'Main Street Pharmacy',
      timezone: 'America/New_York',
      settings: { sendRatePerSecond: 1000 },
    });
  });
  afterAll(() => t.close());

  it('holds a ready notice at night and sends it when the window opens', async () => {
    await advanceTo(new Date('2026-06-11T02:30:00Z')); // 22:30 in New York
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    const held = await settledState(notificationId);
    expect(held).toMatchObject({ state: 'scheduled', reason: 'quiet_hours' });
    expect(held.scheduled_for.toISOString()).toBe('2026-06-11T13:00:00.000Z'); // 09:00 EDT
    expect(textsTo(patient)).toHaveLength(0);
    const delayed = await raw.getJob(notificationId);
    expect(await delayed?.getState()).toBe('delayed');

    await advanceTo(new Date('2026-06-11T13:00:00Z'));
    await waitFor('the text at opening', () => textsTo(patient).length === 1);
    await waitFor('sent', async () => ['sent', 'delivered'].includes((await state(notificationId)).state));
  });

  it("spends none of the pharmacy's send rate on notices it holds", async () => {
    const store = await t.given.pharmacy({
      name: 'Night Rx',
      smsFrom: '+14155550180',
      timezone: 'America/New_York',
    });
    const redis = t.app.get<Redis>(REDIS);
    // The limiter's counters are per pharmacy and wall-clock second: read every second since `from`.
    const tokens = async (from: number) => {
      const seconds = Array.from({ length: Math.floor(Date.now() / 1000) - from + 1 }, (_, i) => from + i);
      const counts = await redis.mget(seconds.map((s) => `${t.config.queue.prefix}:rate:${store.id}:${s}`));
      return counts.reduce((sum, n) => sum + Number(n ?? 0), 0);
    };
    await advanceTo(new Date('2026-06-12T03:00:00Z')); // 23:00 in New York
    const patient = await t.given.patient(store, { phone: nextPhone(), consent: ['sms'] });
    const ready = await t.given.notice(patient);
    const reminder = await t.given.notice(patient, {
      kind: 'refill_due',
      fillStatus: 'picked_up',
      drugName: 'Lisinopril 10 mg',
      dueAt: clock.now(),
    });
    const from = Math.floor(Date.now() / 1000);
    await queue.enqueue([ready, reminder].map((n) => ({ notificationId: n.notificationId })));
    expect(await settledState(ready.notificationId)).toMatchObject({
      state: 'scheduled',
      reason: 'quiet_hours',
    });
    expect(await settledState(reminder.notificationId)).toMatchObject({
      state: 'scheduled',
      reason: 'quiet_hours',
    });
    expect(await tokens(from)).toBe(0);
  });

  it("sends a family's three ready fills as one text, and every notice points to it", async () => {
    await advanceTo(new Date('2026-06-11T16:00:00Z'));
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const notices = [
      await t.given.notice(patient),
      await t.given.notice(patient),
      await t.given.notice(patient),
    ];
    await queue.enqueue(notices.map((n) => ({ notificationId: n.notificationId })));
    await waitFor('all three settled', async () => {
      const states = await Promise.all(notices.map((n) => state(n.notificationId)));
      return states.every((s) => ['sent', 'delivered'].includes(s.state));
    });
    const texts = textsTo(patient);
    expect(texts).toHaveLength(1);
    expect(texts[0].body).toMatch(/3 prescriptions are ready/);
    const covering = await t.db.query(`SELECT id, notification_ids FROM messages WHERE patient_id = $1`, [
      patient.id,
    ]);
    expect(covering).toHaveLength(1);
    expect([...covering[0].notification_ids].sort()).toEqual(notices.map((n) => n.notificationId).sort());
  });

  it("names the drug only to a patient who opted in to detailed messages, and uses the pharmacy's own template", async () => {
    await advanceTo(new Date('2026-06-12T16:00:00Z'));
    const plain = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const detailed = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    await t.db.query(`UPDATE patients SET detailed_messages = true WHERE id = $1`, [detailed.id]);
    const notices = [await t.given.notice(plain), await t.given.notice(detailed)];
    await queue.enqueue(notices.map((n) => ({ notificationId: n.notificationId })));
    await waitFor('both texts', () => textsTo(plain).length === 1 && textsTo(detailed).length === 1);
    expect(textsTo(plain)[0].body).not.toContain('Atorvastatin');
    expect(textsTo(detailed)[0].body).toContain('Atorvastatin 20 mg');

    const custom = await t.given.pharmacy({
      name: 'Custom Rx',
      smsFrom: '+14155550150',
      settings: {
        sendRatePerSecond: 1000,
        templates: {
          ready: {
            en: '{pharmacy}: your order is waiting at the counter. Call {phone}. Reply STOP to opt out.',
          },
        },
      },
    });
    const patient = await t.given.patient(custom, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('custom text', () => textsTo(patient).length === 1);
    expect(textsTo(patient)[0].body).toBe(
      'Custom Rx: your order is waiting at the counter. Call +14155550199. Reply STOP to opt out.',
    );
  });

  it('holds the fourth reminder in a week and sends it when the cap frees up', async () => {
    const start = new Date('2026-06-15T14:00:00Z'); // Monday 10:00 in New York
    await advanceTo(start);
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const reminder = async () => {
      const { notificationId } = await t.given.notice(patient, {
        kind: 'refill_due',
        fillStatus: 'picked_up',
      });
      await queue.enqueue([{ notificationId }]);
      return notificationId;
    };
    for (let day = 0; day < 3; day++) {
      await advanceTo(new Date(start.getTime() + day * 86400_000));
      const id = await reminder();
      await waitFor(`reminder ${day + 1} sent`, async () =>
        ['sent', 'delivered'].includes((await state(id)).state),
      );
    }
    await advanceTo(new Date(start.getTime() + 3 * 86400_000));
    const fourth = await reminder();
    const held = await settledState(fourth);
    expect(held).toMatchObject({ state: 'scheduled', reason: 'cap' });
    // Free once the first send of the week is 7 days old: Monday the 22nd, 10:00 New York.
    expect(held.scheduled_for.toISOString()).toBe('2026-06-22T14:00:00.000Z');
    expect(textsTo(patient)).toHaveLength(3);

    await advanceTo(new Date('2026-06-22T14:00:00Z'));
    await waitFor('fourth sent', async () => ['sent', 'delivered'].includes((await state(fourth)).state));
    expect(textsTo(patient)).toHaveLength(4);
  });

  it('does not cap ready notices', async () => {
    await advanceTo(new Date('2026-06-16T16:00:00Z'));
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    for (let i = 0; i < 4; i++) {
      const { notificationId } = await t.given.notice(patient);
      await queue.enqueue([{ notificationId }]);
      await waitFor('sent', async () => ['sent', 'delivered'].includes((await state(notificationId)).state));
    }
    expect(textsTo(patient)).toHaveLength(4);
  });

  it('calls a landline with voice consent: TwiML with the message and the press-9 menu', async () => {
    await advanceTo(new Date('2026-06-17T16:00:00Z'));
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms', 'voice'] });
    sandbox.setFault(patient.phone, { kind: 'error', code: 21614, times: 1 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('the call', () => callsTo(patient).length === 1);
    const [call] = callsTo(patient);
    expect(call.twiml).toContain('<Say');
    expect(call.twiml).toContain('Main Street Pharmacy');
    expect(call.twiml).toMatch(/<Gather[^>]*numDigits="1"/);
    expect(call.twiml).toContain('press 9');
    expect(call.machineDetection).toBe('DetectMessageEnd');
    expect(call.asyncAmd).toBe(true);
    await waitFor('delivered by call', async () => (await state(notificationId)).state === 'delivered');
    const [answered] = callsTo(patient);
    expect(answered.answeredBy).toBe('human');
    expect(answered.playedTwiml).toBe(call.twiml);
    await waitFor('the verdict logged', async () => (await verdicts(notificationId)).length === 1);
    expect(await verdicts(notificationId)).toEqual([{ status: 'human', provider_sid: call.sid }]);
    expect((await state(notificationId)).channel).toBe('voice');
    const [line] = await t.db.query(`SELECT line_type FROM patients WHERE id = $1`, [patient.id]);
    expect(line.line_type).toBe('landline');
  });

  it('leaves a voicemail the message without the press-9 menu', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['voice'] });
    sandbox.answerAs(patient.phone, 'machine_end_beep');
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('delivered by call', async () => (await state(notificationId)).state === 'delivered');
    const [call] = callsTo(patient);
    expect(call.answeredBy).toBe('machine_end_beep');
    expect(call.playedTwiml).toContain('Main Street Pharmacy');
    expect(call.playedTwiml).toMatch(/<Say[^>]*>[^<]*Main Street Pharmacy[^<]*<\/Say><Hangup\/>/);
    expect(call.playedTwiml).not.toContain('<Gather');
    expect(call.playedTwiml).not.toContain('press 9');
    // The auditor's record says a machine took the call, once however often Twilio posts the verdict.
    expect(await verdicts(notificationId)).toEqual([{ status: 'machine_end_beep', provider_sid: call.sid }]);
    const [message] = await t.db.query(`SELECT id FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    await t.app.get(VoicemailService).answered(message.id, call.sid, 'machine_end_beep');
    expect(await verdicts(notificationId)).toEqual([{ status: 'machine_end_beep', provider_sid: call.sid }]);
  });

  it('sends a landline without voice consent to staff follow-up', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'error', code: 21614 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    expect(await settledState(notificationId)).toMatchObject({
      state: 'failed',
      reason: expect.stringMatching(/landline/),
    });
  });

  it('calls instead when the carrier reports a text undelivered to a landline (30006)', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms', 'voice'] });
    sandbox.setFault(patient.phone, { kind: 'undelivered', code: 30006, times: 1 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('the call', () => callsTo(patient).length === 1);
    await waitFor('delivered by call', async () => (await state(notificationId)).state === 'delivered');
    expect((await state(notificationId)).channel).toBe('voice');
    expect(textsTo(patient)).toMatchObject([{ status: 'undelivered' }]);
    expect(callsTo(patient)[0].twiml).toContain('Main Street Pharmacy');
    const [line] = await t.db.query(`SELECT line_type FROM patients WHERE id = $1`, [patient.id]);
    expect(line.line_type).toBe('landline');
    const messages = await t.db.query(
      `SELECT channel, status, error_code FROM messages WHERE patient_id = $1 ORDER BY channel`,
      [patient.id],
    );
    expect(messages).toMatchObject([
      { channel: 'sms', status: 'undelivered', error_code: 30006 },
      { channel: 'voice', status: 'completed' },
    ]);
  });

  it('fails a text undelivered to a landline into follow-ups when calls are not consented', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'undelivered', code: 30006, times: 1 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('failed', async () => (await state(notificationId)).state === 'failed');
    expect(await state(notificationId)).toMatchObject({
      reason: 'landline without voice consent: call the patient',
    });
    expect(callsTo(patient)).toHaveLength(0);
    const [line] = await t.db.query(`SELECT line_type FROM patients WHERE id = $1`, [patient.id]);
    expect(line.line_type).toBe('landline');
  });

  describe('coalescing', () => {
    type Kind = 'ready' | 'refill_due' | 'renewal_needed' | 'adherence_gap';
    interface Notice {
      patient: 0 | 1;
      kind: Kind;
      drug?: string;
      /** Not yet due (tomorrow): not enqueued, and not pulled into a text that is due now. */
      later?: boolean;
    }
    const cases: {
      name: string;
      notices: Notice[];
      /** The notices each text covers (by position), when the grouping is certain. */
      covered?: number[][];
      texts: number;
      heldForCap?: number;
    }[] = [
      {
        name: 'three ready notices for one patient → one text covering all three',
        notices: [
          { patient: 0, kind: 'ready' },
          { patient: 0, kind: 'ready' },
          { patient: 0, kind: 'ready' },
        ],
        covered: [[0, 1, 2]],
        texts: 1,
      },
      {
        name: 'ready notices for two patients → one text each',
        notices: [
          { patient: 0, kind: 'ready' },
          { patient: 1, kind: 'ready' },
          { patient: 0, kind: 'ready' },
        ],
        covered: [[0, 2], [1]],
        texts: 2,
      },
      {
        name: 'two refill reminders for one patient due together → one text',
        notices: [
          { patient: 0, kind: 'refill_due', drug: 'Atorvastatin 20 mg' },
          { patient: 0, kind: 'refill_due', drug: 'Lisinopril 10 mg' },
        ],
        covered: [[0, 1]],
        texts: 1,
      },
      {
        name: 'a ready notice and a reminder for one patient → separate texts',
        notices: [
          { patient: 0, kind: 'ready' },
          { patient: 0, kind: 'refill_due', drug: 'Lisinopril 10 mg' },
        ],
        covered: [[0], [1]],
        texts: 2,
      },
      {
        name: 'reminders of different kinds → not merged: one goes, the daily cap holds the other',
        notices: [
          { patient: 0, kind: 'refill_due', drug: 'Atorvastatin 20 mg' },
          { patient: 0, kind: 'adherence_gap', drug: 'Lisinopril 10 mg' },
        ],
        texts: 1,
        heldForCap: 1,
      },
      {
        name: 'a reminder due tomorrow is not pulled into one due now',
        notices: [
          { patient: 0, kind: 'refill_due', drug: 'Atorvastatin 20 mg' },
          { patient: 0, kind: 'refill_due', drug: 'Lisinopril 10 mg', later: true },
        ],
        covered: [[0]],
        texts: 1,
      },
    ];

    it.each(cases)('$name', async ({ notices, covered, texts, heldForCap }) => {
      await advanceTo(new Date('2026-06-24T16:00:00Z'));
      const people = [
        await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] }),
        await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] }),
      ];
      const ids: string[] = [];
      for (const n of notices) {
        const { notificationId } = await t.given.notice(people[n.patient], {
          kind: n.kind,
          fillStatus: n.kind === 'ready' ? 'ready' : 'picked_up',
          drugName: n.drug,
          dueAt: new Date(clock.now().getTime() + (n.later ? 86400_000 : 0)),
        });
        ids.push(notificationId);
      }
      const due = ids.filter((_, i) => !notices[i].later);
      await queue.enqueue(due.map((notificationId) => ({ notificationId })));
      const settled = await waitFor('every due notice settled', async () => {
        const states = await Promise.all(due.map(state));
        return states.every((s) => ['sent', 'delivered', 'scheduled'].includes(s.state)) ? states : null;
      });

      const messages = await t.db.query(
        `SELECT notification_ids FROM messages WHERE patient_id = ANY($1::uuid[])`,
        [people.map((p) => p.id)],
      );
      expect(messages).toHaveLength(texts);
      expect(people.flatMap((p) => textsTo(p))).toHaveLength(texts);
      const groups = messages
        .map((m: { notification_ids: string[] }) => m.notification_ids.map((id) => ids.indexOf(id)).sort())
        .sort((x: number[], y: number[]) => x[0] - y[0]);
      if (covered) expect(groups).toEqual(covered);
      expect(settled.filter((s) => s.state === 'scheduled' && s.reason === 'cap')).toHaveLength(
        heldForCap ?? 0,
      );
      for (const [i, n] of notices.entries())
        if (n.later) expect((await state(ids[i])).state).toBe('pending');
    });
  });

  it('ends a 429 storm with every message sent exactly once', async () => {
    const patients = await Promise.all(
      Array.from({ length: 8 }, () => t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] })),
    );
    for (const p of patients) sandbox.setFault(p.phone, { kind: 'http429', times: 2 });
    const notices = await Promise.all(patients.map((p) => t.given.notice(p)));
    await queue.enqueue(notices.map((n) => ({ notificationId: n.notificationId })));
    // A notice the storm does not touch, for comparison: a 429 must cost no more attempts than none.
    const calm = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const control = await t.given.notice(calm);
    await queue.enqueue([{ notificationId: control.notificationId }]);
    await waitFor(
      'all sent',
      async () =>
        (await Promise.all(notices.map((n) => state(n.notificationId)))).every((s) =>
          ['sent', 'delivered'].includes(s.state),
        ),
      30000,
    );
    for (const p of patients) expect(textsTo(p)).toHaveLength(1);
    await waitFor('control sent', async () =>
      ['sent', 'delivered'].includes((await state(control.notificationId)).state),
    );
    const attempts = async (id: string) => (await raw.getJob(id))?.attemptsMade;
    const baseline = await attempts(control.notificationId);
    expect(baseline).toBeDefined();
    for (const n of notices) expect(await attempts(n.notificationId)).toBe(baseline);
  }, 40000);

  it('sends once when the provider recorded the message but answered 500', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'http500AfterRecord', times: 1 });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    // Its delivery reports came while the attempt was unsettled: once settled, the notice shows what they said.
    await waitFor('delivered', async () => (await state(notificationId)).state === 'delivered', 15000);
    expect(textsTo(patient)).toHaveLength(1);
    const [message] = await t.db.query(`SELECT provider_sid FROM messages WHERE patient_id = $1`, [
      patient.id,
    ]);
    expect(message.provider_sid).toBe(textsTo(patient)[0].sid);
  }, 20000);

  it('sends again when a 500 really lost the message, once the attempt is old enough to be settled', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    sandbox.setFault(patient.phone, { kind: 'http500', times: 1 });
    const { notificationId } = await t.given.notice(patient, { dueAt: clock.now() });
    await queue.enqueue([{ notificationId }]);
    // The retry finds the attempt still open and too young to look up: it waits rather than resend.
    const waiting = await waitFor(
      'held for settling',
      async () => {
        const n = await state(notificationId);
        return n.state === 'pending' && (await raw.getJob(notificationId))?.delay ? n : null;
      },
      15000,
    );
    expect(waiting).toBeTruthy();
    expect(textsTo(patient)).toHaveLength(0);
    // A minute later nothing came back for it: the provider never recorded it, so it is sent afresh.
    clock.advance(61_000);
    await (await raw.getJob(notificationId))?.promote();
    await waitFor(
      'sent',
      async () => ['sent', 'delivered'].includes((await state(notificationId)).state),
      15000,
    );
    expect(textsTo(patient)).toHaveLength(1);
  }, 40000);

  it('settles, never resends, an attempt whose delivery report gave it its sid while its lookup ran', async () => {
    const patient = await t.given.patient(pharmacy, { phone: nextPhone(), consent: ['sms'] });
    const { notificationId } = await t.given.notice(patient);
    await queue.enqueue([{ notificationId }]);
    await waitFor('delivered', async () => (await state(notificationId)).state === 'delivered');
    // What a retry reads when the report lands during its lookup: the attempt still at intent (its answer lost,
    // old enough to look up), the provider's sid already on it, the notice owed again.
    await t.db.query(`UPDATE messages SET status = 'intent', created_at = $2 WHERE notification_id = $1`, [
      notificationId,
      new Date(clock.now().getTime() - 120_000),
    ]);
    await t.db.query(`UPDATE notifications SET state = 'pending' WHERE id = $1`, [notificationId]);
    await raw.add('send-notification', { notificationId }, { jobId: `${notificationId}-retry` });
    await waitFor('settled again', async () =>
      ['sent', 'delivered'].includes((await state(notificationId)).state),
    );
    expect(textsTo(patient)).toHaveLength(1);
    const [message] = await t.db.query(`SELECT status FROM messages WHERE notification_id = $1`, [
      notificationId,
    ]);
    expect(message.status).not.toBe('failed');
  });
});
