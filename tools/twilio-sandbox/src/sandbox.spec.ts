import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import twilio from 'twilio';
import type { RequestOptions } from 'twilio/lib/base/RequestClient';
import { startSandbox, type Sandbox } from './sandbox';

const ACCOUNT_SID = 'AC00000000000000000000000000000000';
const AUTH_TOKEN = 'sandbox-auth-token';
const FROM = '+15005550006';
const PATIENT = '+15551230001';

/** The real twilio client, with https://api.twilio.com rewritten to the sandbox. */
class SandboxRequestClient extends twilio.RequestClient {
  constructor(private readonly baseUrl: string) {
    super({ keepAlive: false });
  }

  override request<TData>(opts: RequestOptions<TData>) {
    return super.request({ ...opts, uri: opts.uri.replace(/^https:\/\/api\.twilio\.com/, this.baseUrl) });
  }
}

function client(sandbox: Sandbox, authToken = AUTH_TOKEN): twilio.Twilio {
  return twilio(ACCOUNT_SID, authToken, { httpClient: new SandboxRequestClient(sandbox.url) });
}

interface Received {
  path: string;
  signature: string;
  params: Record<string, string>;
}

/** A local HTTP server standing in for our apps: records every form POST and answers with `reply`. */
interface Receiver {
  url: string;
  received: Received[];
  reply: (req: Received) => { status: number; contentType: string; body: string };
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  const receiver: Receiver = {
    url: '',
    received: [],
    reply: () => ({ status: 204, contentType: 'text/plain', body: '' }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  app.post('/{*path}', (req, res) => {
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(req.body as Record<string, unknown>))
      params[key] = String(value);
    const entry = { path: req.path, signature: req.get('x-twilio-signature') ?? '', params };
    receiver.received.push(entry);
    const { status, contentType, body } = receiver.reply(entry);
    res.status(status).type(contentType).send(body);
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = receiver.close;
  receiver.close = () => {
    server.closeAllConnections();
    return close();
  };
  return receiver;
}

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function rejection(promise: Promise<unknown>): Promise<InstanceType<typeof twilio.RestException>> {
  try {
    await promise;
  } catch (err: unknown) {
    if (err instanceof twilio.RestException) return err;
    throw err;
  }
  throw new Error('expected the request to fail');
}

describe('twilio sandbox', () => {
  let sandbox: Sandbox;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await startReceiver();
    sandbox = await startSandbox({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      consentApiUrl: receiver.url,
      callbackDelayMs: 5,
    });
  });

  afterEach(() => {
    sandbox.reset();
    receiver.received.length = 0;
    receiver.reply = () => ({ status: 204, contentType: 'text/plain', body: '' });
  });

  afterAll(async () => {
    await sandbox.close();
    await receiver.close();
  });

  it('creates a message with the real twilio client and records it', async () => {
    const message = await client(sandbox).messages.create({
      to: PATIENT,
      from: FROM,
      body: 'Your refill is ready',
    });

    expect(message.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(message.status).toBe('queued');
    expect(message.accountSid).toBe(ACCOUNT_SID);
    expect(message.dateCreated).toBeInstanceOf(Date);
    expect(Number.isNaN(message.dateCreated.getTime())).toBe(false);
    expect(sandbox.messages()).toEqual([
      expect.objectContaining({ sid: message.sid, to: PATIENT, from: FROM, body: 'Your refill is ready' }),
    ]);
  });

  it('posts signed sent then delivered status callbacks', async () => {
    const statusCallback = `${receiver.url}/webhooks/twilio/status?job=42`;
    const message = await client(sandbox).messages.create({
      to: PATIENT,
      from: FROM,
      body: 'Hi',
      statusCallback,
    });

    await waitFor(() => receiver.received.length === 2);
    expect(receiver.received.map((r) => r.params.MessageStatus)).toEqual(['sent', 'delivered']);
    for (const { params, signature } of receiver.received) {
      expect(params).toMatchObject({
        MessageSid: message.sid,
        SmsSid: message.sid,
        AccountSid: ACCOUNT_SID,
        From: FROM,
        To: PATIENT,
        ApiVersion: '2010-04-01',
      });
      expect(params.SmsStatus).toBe(params.MessageStatus);
      expect(twilio.validateRequest(AUTH_TOKEN, signature, statusCallback, params)).toBe(true);
      expect(twilio.validateRequest('another-token', signature, statusCallback, params)).toBe(false);
    }
    expect(sandbox.messages()[0].status).toBe('delivered');
  });

  it('retries a failing status callback and survives an unreachable one', async () => {
    let failures = 1;
    receiver.reply = () =>
      failures-- > 0
        ? { status: 503, contentType: 'text/plain', body: 'busy' }
        : { status: 200, contentType: 'text/plain', body: '' };
    await client(sandbox).messages.create({
      to: PATIENT,
      from: FROM,
      body: 'a',
      statusCallback: `${receiver.url}/s`,
    });
    await client(sandbox).messages.create({
      to: PATIENT,
      from: FROM,
      body: 'b',
      statusCallback: 'http://127.0.0.1:1/x',
    });

    await waitFor(() => receiver.received.filter((r) => r.params.MessageStatus === 'delivered').length === 1);
    expect(receiver.received.map((r) => r.params.MessageStatus)).toEqual(['sent', 'sent', 'delivered']);
    await waitFor(() => sandbox.messages().every((m) => m.status === 'delivered'));
  });

  it('rejects a wrong auth token with 401', async () => {
    const err = await rejection(
      client(sandbox, 'wrong-token').messages.create({ to: PATIENT, from: FROM, body: 'x' }),
    );
    expect(err.status).toBe(401);
    expect(err.code).toBe(20003);
    expect(sandbox.messages()).toHaveLength(0);
  });

  it('rejects missing parameters like Twilio', async () => {
    const auth = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`;
    const response = await fetch(`${sandbox.url}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ To: PATIENT, From: FROM }).toString(),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      code: 21602,
      message: 'Message body is required.',
      more_info: 'https://www.twilio.com/docs/errors/21602',
      status: 400,
    });
  });

  it('answers an unsubscribed-recipient fault with a 21610 RestException and records nothing', async () => {
    sandbox.setFault(PATIENT, { kind: 'error', code: 21610 });
    const err = await rejection(client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' }));
    expect(err.status).toBe(400);
    expect(err.code).toBe(21610);
    expect(err.message).toBe('Attempt to send to unsubscribed recipient');
    expect(err.moreInfo).toBe('https://www.twilio.com/docs/errors/21610');
    expect(sandbox.messages()).toHaveLength(0);
  });

  it('applies a 429 fault only `times` times', async () => {
    sandbox.setFault(PATIENT, { kind: 'http429', times: 1 });
    const err = await rejection(client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' }));
    expect(err.status).toBe(429);
    expect(err.code).toBe(20429);

    const message = await client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' });
    expect(sandbox.messages().map((m) => m.sid)).toEqual([message.sid]);
  });

  it('records the message but answers 500 for http500AfterRecord, and sets faults over HTTP', async () => {
    const set = await fetch(`${sandbox.url}/sandbox/faults`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: PATIENT, fault: { kind: 'http500AfterRecord' } }),
    });
    expect(set.status).toBe(200);

    const err = await rejection(
      client(sandbox).messages.create({
        to: PATIENT,
        from: FROM,
        body: 'x',
        statusCallback: `${receiver.url}/s`,
      }),
    );
    expect(err.status).toBe(500);
    expect(sandbox.messages()).toHaveLength(1);
    await waitFor(() => receiver.received.length === 2);

    expect((await fetch(`${sandbox.url}/sandbox/faults`, { method: 'DELETE' })).status).toBe(204);
    await client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' });
    expect(sandbox.messages()).toHaveLength(2);
  });

  it('does not record a message for an http500 fault', async () => {
    sandbox.setFault(PATIENT, { kind: 'http500' });
    const err = await rejection(client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' }));
    expect(err.status).toBe(500);
    expect(sandbox.messages()).toHaveLength(0);
  });

  it('fails a reproducible share of requests in chaos mode', async () => {
    const outcomes = async (): Promise<string[]> => {
      const response = await fetch(`${sandbox.url}/sandbox/chaos`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ rate: 0.5, kinds: ['http500', 'http429'], seed: 7 }),
      });
      expect(response.status).toBe(200);
      const results: string[] = [];
      for (let i = 0; i < 20; i += 1) {
        results.push(
          await client(sandbox)
            .messages.create({ to: PATIENT, from: FROM, body: 'x' })
            .then(
              () => 'ok',
              (err: unknown) => (err instanceof twilio.RestException ? String(err.status) : 'other'),
            ),
        );
      }
      return results;
    };
    const first = await outcomes();
    expect(await outcomes()).toEqual(first);
    expect(first).toContain('ok');
    expect(first.some((o) => o === '500' || o === '429')).toBe(true);
    expect(first).not.toContain('other');
    expect(sandbox.messages()).toHaveLength(first.filter((o) => o === 'ok').length * 2);

    await fetch(`${sandbox.url}/sandbox/chaos`, { method: 'DELETE' });
    await client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' });
  });

  it('lists messages with the real client, filtered by to, from and date', async () => {
    const twilioClient = client(sandbox);
    const mine = await twilioClient.messages.create({ to: PATIENT, from: FROM, body: 'one' });
    await twilioClient.messages.create({ to: '+15551230002', from: FROM, body: 'two' });

    const listed = await twilioClient.messages.list({
      to: PATIENT,
      from: FROM,
      dateSentAfter: new Date(Date.now() - 60_000),
    });
    expect(listed.map((m) => m.sid)).toEqual([mine.sid]);
    expect(listed[0].body).toBe('one');
    expect(await twilioClient.messages.list({ to: PATIENT, dateSentBefore: new Date('2020-01-01') })).toEqual(
      [],
    );
    expect(await twilioClient.messages.list({})).toHaveLength(2);

    const fetched = await twilioClient.messages(mine.sid).fetch();
    expect(fetched.to).toBe(PATIENT);
  });

  it('pages through a long list', async () => {
    const twilioClient = client(sandbox);
    for (let i = 0; i < 5; i += 1)
      await twilioClient.messages.create({ to: PATIENT, from: FROM, body: `m${i}` });
    const listed = await twilioClient.messages.list({ pageSize: 2 });
    expect(listed.map((m) => m.body)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);
  });

  it('creates and lists calls with TwiML, and posts the requested call status callbacks', async () => {
    const twiml = '<Response><Say>Your prescription is ready.</Say></Response>';
    const statusCallback = `${receiver.url}/webhooks/twilio/voice/status`;
    const call = await client(sandbox).calls.create({
      to: PATIENT,
      from: FROM,
      twiml,
      statusCallback,
      statusCallbackEvent: ['ringing', 'answered', 'completed'],
      machineDetection: 'Enable',
    });

    expect(call.sid).toMatch(/^CA[0-9a-f]{32}$/);
    expect(call.status).toBe('queued');
    expect(sandbox.calls()).toEqual([
      expect.objectContaining({
        sid: call.sid,
        to: PATIENT,
        from: FROM,
        twiml,
        statusCallbackEvents: ['ringing', 'answered', 'completed'],
      }),
    ]);

    await waitFor(() => receiver.received.length === 3);
    expect(receiver.received.map((r) => r.params.CallStatus)).toEqual([
      'ringing',
      'in-progress',
      'completed',
    ]);
    const completed = receiver.received[2];
    expect(completed.params).toMatchObject({
      CallSid: call.sid,
      AccountSid: ACCOUNT_SID,
      From: FROM,
      To: PATIENT,
      AnsweredBy: 'human',
    });
    expect(Number(completed.params.CallDuration)).toBeGreaterThan(0);
    for (const { params, signature } of receiver.received) {
      expect(twilio.validateRequest(AUTH_TOKEN, signature, statusCallback, params)).toBe(true);
    }

    const listed = await client(sandbox).calls.list({
      to: PATIENT,
      startTimeAfter: new Date(Date.now() - 60_000),
    });
    expect(listed.map((c) => c.sid)).toEqual([call.sid]);
    expect(listed[0].status).toBe('completed');
  });

  it('posts an async answering-machine verdict and plays the TwiML a call update gives the call', async () => {
    const twiml = '<Response><Say>Ready.</Say><Gather numDigits="1"><Say>Press 9.</Say></Gather></Response>';
    const voicemail = '<Response><Say>Ready.</Say><Hangup/></Response>';
    const amdCallback = `${receiver.url}/webhooks/twilio/voice/amd`;
    sandbox.answerAs(PATIENT, 'machine_end_beep');
    const twilioClient = client(sandbox);
    let updated: Promise<unknown> = Promise.resolve();
    receiver.reply = (req) => {
      // Answer the verdict the way the dispatcher does: replace what the call plays.
      if (req.path.endsWith('/amd'))
        updated = twilioClient.calls(req.params.CallSid).update({ twiml: voicemail });
      return { status: 204, contentType: 'text/plain', body: '' };
    };
    const call = await twilioClient.calls.create({
      to: PATIENT,
      from: FROM,
      twiml,
      machineDetection: 'DetectMessageEnd',
      asyncAmd: 'true',
      asyncAmdStatusCallback: amdCallback,
    });

    await waitFor(() => sandbox.calls()[0]?.status === 'completed');
    await updated;
    const [verdict] = receiver.received;
    expect(verdict.params).toMatchObject({ CallSid: call.sid, AnsweredBy: 'machine_end_beep' });
    expect(twilio.validateRequest(AUTH_TOKEN, verdict.signature, amdCallback, verdict.params)).toBe(true);
    expect(sandbox.calls()[0]).toMatchObject({ answeredBy: 'machine_end_beep', playedTwiml: voicemail });
    // A call that has ended can no longer be redirected.
    const late = await rejection(twilioClient.calls(call.sid).update({ twiml }));
    expect(late.code).toBe(21220);
  });

  it('relays a simulated patient reply as a signed webhook and returns its TwiML', async () => {
    const twiml =
      '<?xml version="1.0" encoding="UTF-8"?><Response><Message>You are unsubscribed.</Message></Response>';
    receiver.reply = () => ({ status: 200, contentType: 'text/xml', body: twiml });

    const send = () =>
      fetch(`${sandbox.url}/sandbox/inbound`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          from: PATIENT,
          to: FROM,
          body: 'STOP',
          messageSid: 'SM0123456789abcdef0123456789abcdef',
        }),
      });
    const response = await send();
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 200,
      contentType: expect.stringContaining('text/xml'),
      body: twiml,
    });
    await send();

    expect(receiver.received).toHaveLength(2);
    const [webhook] = receiver.received;
    expect(webhook.path).toBe('/webhooks/twilio/sms');
    expect(webhook.params).toMatchObject({
      MessageSid: 'SM0123456789abcdef0123456789abcdef',
      SmsSid: 'SM0123456789abcdef0123456789abcdef',
      AccountSid: ACCOUNT_SID,
      From: PATIENT,
      To: FROM,
      Body: 'STOP',
      NumMedia: '0',
      NumSegments: '1',
      ApiVersion: '2010-04-01',
    });
    const url = `${receiver.url}/webhooks/twilio/sms`;
    expect(twilio.validateRequest(AUTH_TOKEN, webhook.signature, url, webhook.params)).toBe(true);
  });

  it('relays keypad input of a call to the gather webhook', async () => {
    receiver.reply = () => ({ status: 200, contentType: 'text/xml', body: '<Response><Hangup/></Response>' });
    const call = await client(sandbox).calls.create({
      to: PATIENT,
      from: FROM,
      url: 'http://127.0.0.1:1/twiml',
    });

    const response = await fetch(`${sandbox.url}/sandbox/gather`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ callSid: call.sid, digits: '1' }),
    });
    expect(await response.json()).toMatchObject({ status: 200, body: '<Response><Hangup/></Response>' });

    const webhook = receiver.received.find((r) => r.path === '/webhooks/twilio/voice/gather');
    expect(webhook?.params).toMatchObject({
      CallSid: call.sid,
      From: FROM,
      To: PATIENT,
      Digits: '1',
      CallStatus: 'in-progress',
    });
    const url = `${receiver.url}/webhooks/twilio/voice/gather`;
    expect(twilio.validateRequest(AUTH_TOKEN, webhook?.signature ?? '', url, webhook?.params ?? {})).toBe(
      true,
    );
  });

  it('exposes and resets recorded traffic over HTTP', async () => {
    await client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'x' });
    await client(sandbox).messages.create({ to: '+15551230002', from: FROM, body: 'y' });
    sandbox.setFault(PATIENT, { kind: 'http500' });

    const listed = await fetch(`${sandbox.url}/sandbox/messages?to=${encodeURIComponent(PATIENT)}`);
    expect(await listed.json()).toEqual([
      expect.objectContaining({
        to: PATIENT,
        from: FROM,
        body: 'x',
        statusCallback: null,
        receivedAt: expect.any(String),
      }),
    ]);

    expect((await fetch(`${sandbox.url}/sandbox/messages`, { method: 'DELETE' })).status).toBe(204);
    expect(sandbox.messages()).toEqual([]);
    await client(sandbox).messages.create({ to: PATIENT, from: FROM, body: 'fault cleared' });
  });

  it('rejects an invalid fault', async () => {
    expect(() => sandbox.setFault(PATIENT, { kind: 'error' })).toThrow(/code is required/);
    const response = await fetch(`${sandbox.url}/sandbox/faults`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: PATIENT, fault: { kind: 'nope' } }),
    });
    expect(response.status).toBe(400);
  });
});
