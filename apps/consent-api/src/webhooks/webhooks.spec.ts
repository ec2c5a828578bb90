import { randomBytes } from 'node:crypto';
import request from 'supertest';
import twilio from 'twilio';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { IN_FLIGHT_WAIT_MS } from '@rxnotify/common/consent/in-flight';
import { ConsentApiModule } from '../consent-api.module';

const EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>';

describe('Twilio webhooks (consent-api, real Postgres, signed requests)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let phones = 5000;

  const sid = (prefix: string) => prefix + randomBytes(16).toString('hex');
  const newPatient = (options: { language?: 'en' | 'es'; phone?: string } = {}): Promise<PatientFixture> =>
    t.given.patient(pharmacy, {
      phone: options.phone ?? `+1415555${phones++}`,
      consent: ['sms', 'voice'],
      language: options.language,
    });

  /** Posts a form as Twilio would, signed with `authToken` (the app's own unless told), or unsigned when null. */
  const post = (
    path: string,
    params: Record<string, string>,
    authToken: string | null = t.config.twilio.authToken,
  ) => {
    const req = request(t.http).post(path).type('form').send(params);
    if (authToken === null) return req;
    return req.set(
      'X-Twilio-Signature',
      twilio.getExpectedTwilioSignature(authToken, t.config.publicUrls.consentApi + path, params),
    );
  };
  const sms = (
    from: string,
    body: string,
    options: { messageSid?: string; to?: string; authToken?: string | null } = {},
  ) =>
    post(
      '/webhooks/twilio/sms',
      {
        MessageSid: options.messageSid ?? sid('SM'),
        AccountSid: t.config.twilio.accountSid,
        From: from,
        To: options.to ?? pharmacy.smsFrom,
        Body: body,
      },
      options.authToken,
    );
  const gather = (
    patient: PatientFixture,
    digits: string,
    options: { retry?: boolean; callSid?: string } = {},
  ) =>
    post(`/webhooks/twilio/voice/gather${options.retry ? '?retry=1' : ''}`, {
      CallSid: options.callSid ?? sid('CA'),
      AccountSid: t.config.twilio.accountSid,
      From: pharmacy.smsFrom,
      To: patient.phone,
      Digits: digits,
      Direction: 'outbound-api',
    });

  const consent = async (patientId: string, channel: 'sms' | 'voice') =>
    (
      await t.db.query(`SELECT status FROM consents WHERE patient_id = $1 AND channel = $2`, [
        patientId,
        channel,
      ])
    )[0]?.status;
  const events = (patientId: string) =>
    t.db.query<{ channel: string; status: string; source: string; actor: string }[]>(
      `SELECT channel, status, source, actor FROM consent_events WHERE patient_id = $1 AND actor <> 'test' ORDER BY id`,
      [patientId],
    );
  const messages = (xml: string) => [...xml.matchAll(/<Message>([^<]*)<\/Message>/g)].map((m) => m[1]);

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config));
    pharmacy = await t.given.pharmacy({ name: 'Main Street Pharmacy', smsFrom: '+14155550100' });
  });
  afterAll(() => t.close());

  describe('inbound SMS', () => {
    it('refuses a forged, missing or replayed-with-other-fields signature with 403, changing nothing', async () => {
      const patient = await newPatient();
      await sms(patient.phone, 'STOP', { authToken: 'not-the-token' }).expect(403);
      await sms(patient.phone, 'STOP', { authToken: null }).expect(403);
      const params = { MessageSid: sid('SM'), From: patient.phone, To: pharmacy.smsFrom, Body: 'HELP' };
      const signature = twilio.getExpectedTwilioSignature(
        t.config.twilio.authToken,
        `${t.config.publicUrls.consentApi}/webhooks/twilio/sms`,
        params,
      );
      await request(t.http)
        .post('/webhooks/twilio/sms')
        .type('form')
        .set('X-Twilio-Signature', signature)
        .send({ ...params, Body: 'STOP' })
        .expect(403);

      expect(await consent(patient.id, 'sms')).toBe('opted_in');
      expect(await events(patient.id)).toEqual([]);
      expect(
        await t.db.query(`SELECT 1 FROM inbound_messages WHERE message_sid = $1`, [params.MessageSid]),
      ).toEqual([]);
    });

    it.each(['STOP', ' stop! ', 'please stop texting me', 'Unsubscribe', 'STOPALL'])(
      'opts out on %j, committed before one confirmation <Message>',
      async (body) => {
        const patient = await newPatient();
        const messageSid = sid('SM');
        const res = await sms(patient.phone, body, { messageSid }).expect(200);
        expect(res.headers['content-type']).toMatch(/^text\/xml/);
        const replies = messages(res.text);
        expect(replies).toHaveLength(1);
        expect(replies[0]).toContain('Main Street Pharmacy');
        expect(replies[0]).toMatch(/unsubscribed/i);

        expect(await consent(patient.id, 'sms')).toBe('opted_out');
        expect(await consent(patient.id, 'voice')).toBe('opted_in');
        expect(await events(patient.id)).toEqual([
          { channel: 'sms', status: 'opted_out', source: 'sms_keyword', actor: `twilio:${messageSid}` },
        ]);
        const [inbound] = await t.db.query(
          `SELECT pharmacy_id, intent, patients_matched FROM inbound_messages WHERE message_sid = $1`,
          [messageSid],
        );
        expect(inbound).toEqual({ pharmacy_id: pharmacy.id, intent: 'opt_out', patients_matched: 1 });
      },
    );

    it('applies a redelivered MessageSid once, answering the repeat with an empty Response', async () => {
      const patient = await newPatient();
      const messageSid = sid('SM');
      const first = await sms(patient.phone, 'STOP', { messageSid }).expect(200);
      expect(messages(first.text)).toHaveLength(1);
      const again = await Promise.all([
        sms(patient.phone, 'STOP', { messageSid }),
        sms(patient.phone, 'STOP', { messageSid }),
      ]);
      for (const res of again) expect(res.text).toBe(EMPTY);
      expect(await events(patient.id)).toHaveLength(1);

      // A new STOP while opted out is confirmed again but is no new ledger entry.
      const repeat = await sms(patient.phone, 'stop').expect(200);
      expect(messages(repeat.text)).toHaveLength(1);
      expect(await events(patient.id)).toHaveLength(1);
    });

    it(
      'answers 503 to a STOP while a text to the patient is still in flight, then confirms it to the redelivery',
      async () => {
        const patient = await newPatient();
        const { notificationId } = await t.given.notice(patient);
        const messageId = await t.given.intentMessage(patient, notificationId, { from: pharmacy.smsFrom });
        const messageSid = sid('SM');
        const refused = await sms(patient.phone, 'STOP', { messageSid }).expect(503);
        expect(refused.text).not.toContain('<Message>');
        // Not acknowledged, but already in force: the dispatcher will send nothing more.
        expect(await consent(patient.id, 'sms')).toBe('opted_out');

        // The provider call ends; Twilio retries the same MessageSid.
        await t.db.query(`UPDATE messages SET status = 'queued' WHERE id = $1`, [messageId]);
        await t.db.query(
          `INSERT INTO message_attempts (message_id, notification_id, event, status)
           SELECT id, notification_id, 'result', 'queued' FROM messages WHERE id = $1`,
          [messageId],
        );
        // The patient got nothing with the 503: the redelivery carries the confirmation, once.
        const retried = await sms(patient.phone, 'STOP', { messageSid }).expect(200);
        expect(messages(retried.text)).toEqual([expect.stringMatching(/unsubscribed/i)]);
        const again = await sms(patient.phone, 'STOP', { messageSid }).expect(200);
        expect(again.text).toBe(EMPTY);
        expect(await events(patient.id)).toHaveLength(1);
      },
      IN_FLIGHT_WAIT_MS + 15_000,
    );

    it('opts back in on START', async () => {
      const patient = await newPatient();
      await sms(patient.phone, 'STOP').expect(200);
      const res = await sms(patient.phone, 'start').expect(200);
      expect(messages(res.text)[0]).toMatch(/resubscribed.*Reply STOP to opt out\.$/);
      expect(await consent(patient.id, 'sms')).toBe('opted_in');
      expect((await events(patient.id)).map((e) => e.status)).toEqual(['opted_out', 'opted_in']);
    });

    it('answers HELP with the pharmacy, its callback phone and how to opt out, changing nothing', async () => {
      const patient = await newPatient();
      const res = await sms(patient.phone, 'help').expect(200);
      const [reply] = messages(res.text);
      expect(reply).toContain('Main Street Pharmacy');
      expect(reply).toContain(pharmacy.callbackPhone);
      expect(reply).toContain('Reply STOP to opt out');
      expect(await events(patient.id)).toEqual([]);
    });

    it('replies in Spanish to a Spanish-speaking patient', async () => {
      const patient = await newPatient({ language: 'es' });
      const res = await sms(patient.phone, 'STOP').expect(200);
      expect(messages(res.text)[0]).toMatch(/baja/i);
    });

    it('opts out every patient who shares the phone', async () => {
      const phone = `+1415555${phones++}`;
      const parent = await newPatient({ phone });
      const child = await newPatient({ phone });
      const res = await sms(phone, 'STOP').expect(200);
      expect(messages(res.text)).toHaveLength(1);
      expect(await consent(parent.id, 'sms')).toBe('opted_out');
      expect(await consent(child.id, 'sms')).toBe('opted_out');
    });

    it('changes nothing for a negation or small talk, and does not reply', async () => {
      const patient = await newPatient();
      for (const body of ["don't stop", 'thanks, see you tomorrow', '']) {
        const res = await sms(patient.phone, body).expect(200);
        expect(res.text).toBe(EMPTY);
      }
      expect(await consent(patient.id, 'sms')).toBe('opted_in');
      expect(await events(patient.id)).toEqual([]);
    });

    it('answers an unknown sender or an unknown pharmacy number with an empty Response', async () => {
      const patient = await newPatient();
      expect((await sms('+14155559999', 'STOP').expect(200)).text).toBe(EMPTY);
      expect((await sms('SHORTCODE', 'STOP').expect(200)).text).toBe(EMPTY);
      expect((await sms(patient.phone, 'STOP', { to: '+14155550177' }).expect(200)).text).toBe(EMPTY);
      expect(await consent(patient.id, 'sms')).toBe('opted_in');
    });

    it('interleaves with staff changes of the same consent without deadlock, state matching the last event', async () => {
      const patient = await newPatient();
      const staff = await t.given.apiKey('staff', pharmacy);
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          i % 2
            ? sms(patient.phone, i % 4 === 1 ? 'STOP' : 'START')
            : request(t.http)
                .put(`/v1/patients/${patient.id}/consent/sms`)
                .set('Authorization', `Bearer ${staff}`)
                .send({ status: i % 4 === 0 ? 'opted_in' : 'opted_out', source: 'front_desk' }),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
      const [last] = await t.db.query(
        `SELECT status, source FROM consent_events WHERE patient_id = $1 AND channel = 'sms' ORDER BY id DESC LIMIT 1`,
        [patient.id],
      );
      const [current] = await t.db.query(
        `SELECT status, source FROM consents WHERE patient_id = $1 AND channel = 'sms'`,
        [patient.id],
      );
      expect(current).toEqual(last);
    });

    it('confirms a STOP and a keypress for a pharmacy whose name holds a character XML cannot carry', async () => {
      // U+FFFF passes every name rule; twilio's TwiML builder threw on it after the opt-out was recorded.
      // A name with no letters GSM-7 can spell is sent as it is.
      const odd = await t.given.pharmacy({ name: '薬局\uffff', smsFrom: '+14155550177' });
      const patient = await t.given.patient(odd, { phone: `+1415555${phones++}`, consent: ['sms', 'voice'] });
      const stop = await sms(patient.phone, 'STOP', { to: odd.smsFrom }).expect(200);
      expect(messages(stop.text)[0]).toMatch(/unsubscribed from 薬局 messages\. Reply START/i);
      expect(await consent(patient.id, 'sms')).toBe('opted_out');
      const call = await post('/webhooks/twilio/voice/gather', {
        CallSid: sid('CA'),
        AccountSid: t.config.twilio.accountSid,
        From: odd.smsFrom,
        To: patient.phone,
        Digits: '9',
        Direction: 'outbound-api',
      }).expect(200);
      expect(call.text).toContain('automated calls from 薬局. Goodbye.</Say>');
    });

    it('answers 400 for a signed form without the fields Twilio always sends', async () => {
      const res = await post('/webhooks/twilio/sms', {
        From: '+14155550000',
        To: pharmacy.smsFrom,
        Body: 'STOP',
      }).expect(400);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body.message).toEqual(['MessageSid is required, once']);
      await post('/webhooks/twilio/sms', {
        MessageSid: 'x'.repeat(5000),
        From: '+14155550000',
        To: pharmacy.smsFrom,
      }).expect(400);
    });
  });

  describe('voice keypress', () => {
    it('opts the called patient out of voice on 9, confirms and hangs up', async () => {
      const patient = await newPatient();
      const callSid = sid('CA');
      const res = await gather(patient, '9', { callSid }).expect(200);
      expect(res.headers['content-type']).toMatch(/^text\/xml/);
      expect(res.text).toContain(
        'You will not receive further automated calls from Main Street Pharmacy. Goodbye.</Say><Hangup/>',
      );
      expect(await consent(patient.id, 'voice')).toBe('opted_out');
      expect(await consent(patient.id, 'sms')).toBe('opted_in');
      expect(await events(patient.id)).toEqual([
        { channel: 'voice', status: 'opted_out', source: 'voice_keypress', actor: `twilio:${callSid}` },
      ]);

      // Pressing 9 again (a retried webhook, or a second call) records nothing new.
      await gather(patient, '9', { callSid }).expect(200);
      expect(await events(patient.id)).toHaveLength(1);
    });

    it('repeats the menu once on another digit, then says goodbye, changing nothing', async () => {
      const patient = await newPatient();
      const menu = await gather(patient, '1').expect(200);
      expect(menu.text).toContain(
        `<Gather numDigits="1" timeout="5" action="${t.config.publicUrls.consentApi}/webhooks/twilio/voice/gather?retry=1">`,
      );
      expect(menu.text).toContain('Press 9 to stop these calls.</Say></Gather>');

      const end = await gather(patient, '1', { retry: true }).expect(200);
      expect(end.text).toMatch(/<Say[^>]*>Goodbye\.<\/Say><Hangup\/><\/Response>$/);
      expect(await consent(patient.id, 'voice')).toBe('opted_in');

      await gather(patient, '9', { retry: true }).expect(200);
      expect(await consent(patient.id, 'voice')).toBe('opted_out');
    });

    it('speaks Spanish to a Spanish-speaking patient', async () => {
      const patient = await newPatient({ language: 'es' });
      const res = await gather(patient, '9').expect(200);
      expect(res.text).toContain('language="es-US"');
      expect(res.text).toContain('No recibirá más llamadas automáticas de Main Street Pharmacy.');
    });

    it('refuses an unsigned keypress', async () => {
      const patient = await newPatient();
      await request(t.http)
        .post('/webhooks/twilio/voice/gather')
        .type('form')
        .send({ CallSid: sid('CA'), From: pharmacy.smsFrom, To: patient.phone, Digits: '9' })
        .expect(403);
      expect(await consent(patient.id, 'voice')).toBe('opted_in');
    });
  });
});
