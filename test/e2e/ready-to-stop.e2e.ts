import http from 'node:http';
import { client, startStack, type Stack } from '../helpers/stack';
import { waitFor } from '../helpers/wait';

/**
 * The first real path, end to end: separate processes, HTTP only. Staff marks a fill ready, the opted-in
 * patient gets one text, callbacks mark it delivered, STOP stops the next one, START and HELP work.
 */
describe('ready → text → STOP (all apps and the Twilio sandbox as processes)', () => {
  let stack: Stack;
  let admin: ReturnType<typeof client>;
  let staffConsent: ReturnType<typeof client>;
  let staffScheduler: ReturnType<typeof client>;
  let staffDispatcher: ReturnType<typeof client>;
  let sandbox: ReturnType<typeof client>;
  let pharmacy: { id: string; smsFrom: string };
  const phone = '+14155552671';

  const inbound = (body: string, messageSid?: string) =>
    sandbox.post('/sandbox/inbound', {
      from: phone,
      to: pharmacy.smsFrom,
      body,
      ...(messageSid ? { messageSid } : {}),
    });
  const messagesTo = async (to: string) =>
    (await sandbox.get(`/sandbox/messages?to=${encodeURIComponent(to)}`)).body as Array<{
      from: string;
      to: string;
      body: string;
    }>;
  let fillCounter = 0;
  const readyFill = async (patientExternalId: string) => {
    const externalId = `F-${++fillCounter}`;
    const upsert = await staffScheduler.post('/v1/fills', {
      fills: [
        {
          pharmacyId: pharmacy.id,
          externalId,
          patientExternalId,
          rxNumber: `RX-${fillCounter}`,
          fillNumber: 0,
          drugName: 'Metformin 500 mg',
          quantity: 60,
          daysSupply: 30,
          refillsRemaining: 5,
          filledAt: new Date(Date.now() - 3600_000).toISOString(),
          status: 'in_progress',
        },
      ],
    });
    expect(upsert.status).toBe(200);
    const fillId = (upsert.body as { results: Array<{ id: string }> }).results[0].id;
    const ready = await staffScheduler.post(`/v1/fills/${fillId}/ready`);
    expect(ready.status).toBe(202);
    return (ready.body as { notificationId: string }).notificationId;
  };
  const notificationState = (id: string) =>
    staffDispatcher.get(`/v1/notifications/${id}`).then((r) => r.body as { state: string; reason?: string });

  beforeAll(async () => {
    stack = await startStack();
    const created = stack.cli('api-key', 'create', '--role', 'admin', '--label', 'e2e admin');
    expect(created.status).toBe(0);
    const adminKey = created.stdout.trim().split('\n').pop() as string;
    admin = client(stack.urls.consentApi, adminKey);
    sandbox = client(stack.urls.sandbox);

    const response = await admin.post('/v1/pharmacies', {
      name: 'Main Street Pharmacy',
      timezone: 'America/Los_Angeles',
      smsFrom: '(415) 555-0100',
      callbackPhone: '415-555-0199',
      settings: { readyCoalesceSeconds: 0, quietHours: { start: '00:00', end: '23:59' } },
    });
    expect(response.status).toBe(201);
    pharmacy = response.body;
    expect(pharmacy.smsFrom).toBe('+14155550100');

    const staff = stack.cli(
      'api-key',
      'create',
      '--role',
      'staff',
      '--pharmacy',
      pharmacy.id,
      '--label',
      'counter',
    );
    const staffKey = staff.stdout.trim().split('\n').pop() as string;
    staffConsent = client(stack.urls.consentApi, staffKey);
    staffScheduler = client(stack.urls.scheduler, staffKey);
    staffDispatcher = client(stack.urls.dispatcher, staffKey);
  }, 60000);
  afterAll(async () => {
    await stack?.stop();
  });

  let patientId: string;

  it('texts the opted-in patient once, from the pharmacy number, and follows callbacks to delivered', async () => {
    const patient = await staffConsent.post('/v1/patients', {
      pharmacyId: pharmacy.id,
      externalId: 'PT-1',
      firstName: 'Ada',
      lastName: 'Lovelace',
      phone: '(415) 555-2671',
    });
    expect(patient.status).toBe(201);
    patientId = (patient.body as { id: string }).id;
    expect(
      (
        await staffConsent.put(`/v1/patients/${patientId}/consent/sms`, {
          status: 'opted_in',
          source: 'counter',
          evidence: 'signed form',
        })
      ).status,
    ).toBe(200);

    const notificationId = await readyFill('PT-1');
    const [text] = await waitFor('the text', async () => {
      const received = await messagesTo(phone);
      return received.length > 0 ? received : null;
    });
    expect(text.from).toBe('+14155550100');
    // The pharmacy, its callback phone, the opt-out line: and no drug name.
    expect(text.body).toBe(
      'Main Street Pharmacy: Your prescription is ready for pickup. Questions? Call +14155550199. Reply STOP to opt out.',
    );

    await waitFor('delivered', async () => (await notificationState(notificationId)).state === 'delivered');
    const messages = await staffDispatcher.get(`/v1/messages?notificationId=${notificationId}`);
    expect(messages.body).toEqual([
      expect.objectContaining({ to: phone, status: 'delivered', channel: 'sms' }),
    ]);
    expect(await messagesTo(phone)).toHaveLength(1);
  });

  it('STOP opts out at once with one confirmation, and the next ready notice is suppressed', async () => {
    const reply = await inbound(' Stop! ', 'SM00000000000000000000000000000001');
    expect(reply.body).toMatchObject({ status: 200 });
    const twiml = (reply.body as { body: string }).body;
    expect(twiml.match(/<Message>/g)).toHaveLength(1);

    const consent = await staffConsent.get(`/v1/patients/${patientId}/consent`);
    expect(consent.body).toMatchObject({ sms: { status: 'opted_out', source: 'sms_keyword' } });

    const notificationId = await readyFill('PT-1');
    await waitFor('suppressed', async () => (await notificationState(notificationId)).state === 'suppressed');
    expect(await notificationState(notificationId)).toMatchObject({ reason: 'opted_out' });
    expect(await messagesTo(phone)).toHaveLength(1);
  });

  it('calls a patient who consented only to calls; pressing 9 on the call stops the next one', async () => {
    const landline = '+14155552672';
    const created = await staffConsent.post('/v1/patients', {
      pharmacyId: pharmacy.id,
      externalId: 'PT-VOICE',
      firstName: 'Grace',
      lastName: 'Hopper',
      phone: landline,
    });
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;
    const consent = await staffConsent.put(`/v1/patients/${id}/consent/voice`, {
      status: 'opted_in',
      source: 'counter',
    });
    expect(consent.status).toBe(200);
    const callsTo = async () =>
      (await sandbox.get(`/sandbox/calls?to=${encodeURIComponent(landline)}`)).body as Array<{
        sid: string;
        twiml: string;
        status: string;
      }>;

    const first = await readyFill('PT-VOICE');
    const [call] = await waitFor('the call', async () => {
      const calls = await callsTo();
      return calls.length > 0 ? calls : null;
    });
    expect(call.twiml).toContain('Main Street Pharmacy');
    expect(call.twiml).toMatch(/<Gather[^>]*numDigits="1"/);
    await waitFor('delivered by call', async () => (await notificationState(first)).state === 'delivered');
    expect(await messagesTo(landline)).toHaveLength(0);

    // The patient presses 9: the sandbox posts the keypress, signed, to consent-api's gather webhook.
    const pressed = await sandbox.post('/sandbox/gather', { callSid: call.sid, digits: '9' });
    expect(pressed.status).toBe(200);
    const answer = pressed.body as { status: number; body: string };
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('You will not receive further automated calls from Main Street Pharmacy.');
    expect(answer.body).toContain('<Hangup/>');
    const record = await staffConsent.get(`/v1/patients/${id}/consent`);
    expect(record.body).toMatchObject({ voice: { status: 'opted_out', source: 'voice_keypress' } });

    const second = await readyFill('PT-VOICE');
    await waitFor('suppressed', async () => (await notificationState(second)).state === 'suppressed');
    expect(await notificationState(second)).toMatchObject({ reason: 'opted_out' });
    expect(await callsTo()).toHaveLength(1);
  });

  it('ignores the same inbound webhook delivered twice', async () => {
    const before = (await staffConsent.get(`/v1/patients/${patientId}/consent`)).body as {
      history: unknown[];
    };
    const first = (await inbound('START', 'SM00000000000000000000000000000002')).body as { body: string };
    const second = (await inbound('START', 'SM00000000000000000000000000000002')).body as {
      status: number;
      body: string;
    };
    expect(first.body).toContain('<Message>');
    // The redelivery is acknowledged (Twilio stops retrying) and answered with nothing: no second confirmation.
    expect(second).toMatchObject({ status: 200 });
    expect(second.body).not.toContain('<Message>');
    const after = (await staffConsent.get(`/v1/patients/${patientId}/consent`)).body as {
      sms: { status: string };
      history: unknown[];
    };
    expect(after.sms.status).toBe('opted_in');
    expect(after.history).toHaveLength(before.history.length + 1);
  });

  it('answers HELP with the pharmacy and its callback phone', async () => {
    const reply = (await inbound('help')).body as { body: string };
    expect(reply.body).toContain('Main Street Pharmacy');
    expect(reply.body).toMatch(/415.{0,3}555.{0,3}0199/);
    expect(reply.body).toMatch(/STOP/);
  });

  it('suppresses a patient who never consented, sending nothing', async () => {
    const other = '+14155552672';
    const created = await staffConsent.post('/v1/patients', {
      pharmacyId: pharmacy.id,
      externalId: 'PT-2',
      firstName: 'Grace',
      phone: other,
    });
    expect(created.status).toBe(201);
    const notificationId = await readyFill('PT-2');
    await waitFor('suppressed', async () => (await notificationState(notificationId)).state === 'suppressed');
    expect(await notificationState(notificationId)).toMatchObject({ reason: 'no_consent' });
    expect(await messagesTo(other)).toHaveLength(0);
  });

  it('refuses a forged inbound webhook', async () => {
    const forged = await fetch(`${stack.urls.consentApi}/webhooks/twilio/sms`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': 'bm9wZQ==' },
      body: new URLSearchParams({
        From: phone,
        To: pharmacy.smsFrom,
        Body: 'STOP',
        MessageSid: 'SMforged',
      }).toString(),
    });
    expect(forged.status).toBe(403);
    const consent = (await staffConsent.get(`/v1/patients/${patientId}/consent`)).body as {
      sms: { status: string };
    };
    expect(consent.sms.status).toBe('opted_in');
  });

  it('keeps idle connections open 65 s, longer than the proxies in front usually keep theirs', async () => {
    for (const url of [stack.urls.consentApi, stack.urls.scheduler, stack.urls.dispatcher]) {
      const agent = new http.Agent({ keepAlive: true });
      const header = await new Promise<string | undefined>((resolve, reject) => {
        http
          .get(`${url}/health/live`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(String(res.headers['keep-alive'])));
          })
          .on('error', reject);
      }).finally(() => agent.destroy());
      expect(header).toBe('timeout=65');
    }
  });

  it('keeps phone numbers, names and message bodies out of every log line', () => {
    const logs = stack.logs();
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of ['5552671', '555-2671', 'Lovelace', 'Grace', 'Reply STOP']) {
      expect(logs).not.toContain(secret);
    }
  });
});
