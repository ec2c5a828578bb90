/**
 * A Twilio-compatible HTTP server for development and tests.
 *
 * It answers the subset of Twilio's REST API 2010-04-01 that rxnotify uses (Messages and Calls: create, list,
 * fetch), sends signed status callbacks the way Twilio does, injects faults on demand, and relays simulated
 * patient replies (SMS and keypad input) to the consent-api as signed webhooks. State lives in memory only.
 */
import { randomBytes, randomUUID, createHash, timingSafeEqual } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Agent as HttpAgent, createServer, request as httpRequest, type Server } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express, { type NextFunction, type Request, type Response } from 'express';
import twilio from 'twilio';

const API_VERSION = '2010-04-01';
/** As Twilio: a webhook that has not answered in 15 s has failed. */
const CALLBACK_TIMEOUT_MS = 15_000;
/** Delays between attempts of a status callback that failed (connection error or non-2xx). */
const CALLBACK_RETRY_DELAYS_MS = [100, 300];
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

export interface SandboxOptions {
  /** 0 picks a free port. Default 0. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  accountSid: string;
  authToken: string;
  /** Base URL of the consent-api, target of simulated inbound replies (/sandbox/inbound, /sandbox/gather). */
  consentApiUrl?: string;
  /** Delay before each status callback step. Default 20. */
  callbackDelayMs?: number;
}

export type FaultKind = 'http429' | 'http500' | 'http500AfterRecord' | 'error' | 'undelivered';
export type ChaosKind = 'http429' | 'http500' | 'http500AfterRecord';

export interface Fault {
  kind: FaultKind;
  /**
   * Twilio error code, required for kind 'error' (21610, 21211, 21614, ...); for 'undelivered' (a text accepted,
   * then reported undelivered by the carrier) the callback's ErrorCode, default 30006.
   */
  code?: number;
  /** How many create requests the fault applies to. Default: every request until cleared. */
  times?: number;
}

export interface ChaosOptions {
  /** Probability (0..1) that a create request fails. */
  rate: number;
  /** Default: all three kinds. */
  kinds?: ChaosKind[];
  /** Makes the sequence of failures reproducible. */
  seed?: number;
}

export type MessageStatus = 'queued' | 'sent' | 'delivered' | 'undelivered';
/** Who picks up a call placed with MachineDetection, as Twilio's AnsweredBy reports it. */
export type AnsweredBy = 'human' | 'machine_end_beep' | 'machine_end_silence' | 'machine_end_other' | 'fax';
export type CallStatus = 'queued' | 'initiated' | 'ringing' | 'in-progress' | 'completed';

export interface SandboxMessage {
  sid: string;
  to: string;
  from: string;
  body: string;
  status: MessageStatus;
  statusCallback: string | null;
  /** ISO 8601. */
  receivedAt: string;
}

export interface SandboxCall {
  sid: string;
  to: string;
  from: string;
  twiml: string | null;
  url: string | null;
  status: CallStatus;
  statusCallback: string | null;
  statusCallbackEvents: string[];
  machineDetection: string | null;
  /** AsyncAmd=true: the verdict goes to `asyncAmdStatusCallback` while the call plays. */
  asyncAmd: boolean;
  asyncAmdStatusCallback: string | null;
  /** Set once answered, when machine detection was asked for. */
  answeredBy: AnsweredBy | null;
  /** The TwiML the call ended up playing: the created one, or the last one a call update gave it. */
  playedTwiml: string | null;
  /** ISO 8601. */
  receivedAt: string;
}

export interface Sandbox {
  /** Base URL, e.g. http://127.0.0.1:4010; use it in place of https://api.twilio.com. */
  url: string;
  port: number;
  messages(): SandboxMessage[];
  calls(): SandboxCall[];
  /** Forgets messages, calls, faults and chaos, and cancels pending callbacks. */
  reset(): void;
  setFault(to: string, fault: Fault): void;
  clearFaults(): void;
  /** Who answers calls placed with MachineDetection to this number (default 'human'), until reset. */
  answerAs(to: string, answeredBy: AnsweredBy): void;
  setChaos(chaos: ChaosOptions | null): void;
  close(): Promise<void>;
}

interface MessageRecord extends SandboxMessage {
  messagingServiceSid: string | null;
  /** Set when the carrier will report it undelivered. */
  errorCode: number | null;
  createdAt: Date;
  updatedAt: Date;
}

interface CallRecord extends SandboxCall {
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
}

interface ActiveFault {
  fault: Fault;
  remaining: number | null;
}

interface ActiveChaos {
  rate: number;
  kinds: ChaosKind[];
  random: () => number;
}

interface TwilioError {
  status: number;
  code: number;
  message: string;
}

type Params = Record<string, string>;

const FAULT_KINDS: readonly FaultKind[] = [
  'http429',
  'http500',
  'http500AfterRecord',
  'error',
  'undelivered',
];
const CHAOS_KINDS: readonly ChaosKind[] = ['http429', 'http500', 'http500AfterRecord'];

const ERROR_MESSAGES: Record<number, string> = {
  20003: 'Authenticate',
  20404: 'The requested resource was not found',
  20429: 'Too Many Requests',
  20500: 'Internal Server Error',
  21201: "No 'To' number is specified",
  21205: "A 'Url' or 'Twiml' parameter is required",
  21211: "The 'To' number is not a valid phone number.",
  21213: "No 'From' number is specified",
  21602: 'Message body is required.',
  21603: "A 'From' phone number is required.",
  21604: "A 'To' phone number is required.",
  21610: 'Attempt to send to unsubscribed recipient',
  21614: "'To' number is not a valid mobile number",
  21220: 'Call is not in-progress. Cannot redirect.',
  30006: 'Landline or unreachable carrier',
};

const ANSWERED_BY: readonly AnsweredBy[] = [
  'human',
  'machine_end_beep',
  'machine_end_silence',
  'machine_end_other',
  'fax',
];

export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const { accountSid, authToken } = opts;
  const callbackDelayMs = opts.callbackDelayMs ?? 20;
  const consentApiUrl = opts.consentApiUrl?.replace(/\/+$/, '');

  let messages: MessageRecord[] = [];
  let calls: CallRecord[] = [];
  const faults = new Map<string, ActiveFault>();
  const answers = new Map<string, AnsweredBy>();
  let chaos: ActiveChaos | null = null;
  // Aborted on reset() and close(): cancels every pending callback and relay. Every pending callback listens
  // to it, thousands under load: not a leak, so no listener-count warning.
  const lifecycleController = () => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  };
  let lifecycle = lifecycleController();
  const httpAgent = new HttpAgent({ keepAlive: true });
  const httpsAgent = new HttpsAgent({ keepAlive: true });

  // ---------------------------------------------------------------- faults

  function setFault(to: string, value: Fault): void {
    const fault = parseFault(value);
    if (typeof fault === 'string') throw new Error(`invalid fault: ${fault}`);
    faults.set(to, { fault, remaining: fault.times ?? null });
  }

  function setChaos(value: ChaosOptions | null): void {
    if (value === null) {
      chaos = null;
      return;
    }
    const options = parseChaos(value);
    if (typeof options === 'string') throw new Error(`invalid chaos: ${options}`);
    chaos = {
      rate: options.rate,
      kinds: options.kinds && options.kinds.length > 0 ? [...options.kinds] : [...CHAOS_KINDS],
      random: options.seed === undefined ? Math.random : mulberry32(options.seed),
    };
  }

  /** The fault that applies to this create request, if any; consumes one use of a counted fault. */
  function takeFault(to: string): Fault | null {
    const active = faults.get(to);
    if (active) {
      if (active.remaining !== null) {
        active.remaining -= 1;
        if (active.remaining <= 0) faults.delete(to);
      }
      return active.fault;
    }
    if (chaos && chaos.random() < chaos.rate) {
      return { kind: chaos.kinds[Math.floor(chaos.random() * chaos.kinds.length)] ?? 'http500' };
    }
    return null;
  }

  /** The error answer for a fault that stops the request before anything is recorded. */
  function rejectingFault(fault: Fault | null): TwilioError | null {
    switch (fault?.kind) {
      case 'http429':
        return twilioError(429, 20429);
      case 'http500':
        return twilioError(500, 20500);
      case 'error':
        return twilioError(400, fault.code ?? 21610);
      default:
        return null;
    }
  }

  function reset(): void {
    lifecycle.abort();
    lifecycle = lifecycleController();
    messages = [];
    calls = [];
    faults.clear();
    answers.clear();
    chaos = null;
  }

  // ---------------------------------------------------------------- outbound callbacks

  /** Runs a background task; it never throws, and stops when the sandbox is reset or closed. */
  function background(task: (signal: AbortSignal) => Promise<void>): void {
    task(lifecycle.signal).catch(() => undefined);
  }

  /** Posts a signed form as Twilio does; resolves with the answer once it was read. */
  function postSigned(
    url: string,
    params: Params,
    signal: AbortSignal,
  ): Promise<{ status: number; contentType: string | null; text: string }> {
    const body = new URLSearchParams(params).toString();
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        target,
        {
          method: 'POST',
          // Plain node:http on kept-alive sockets: under load the sandbox posts two callbacks for every text,
          // and fetch cost several times as much CPU per request.
          agent: target.protocol === 'https:' ? httpsAgent : httpAgent,
          signal,
          headers: {
            'Content-Type': 'application/x-www-form-urlencoded',
            'Content-Length': Buffer.byteLength(body),
            'User-Agent': 'TwilioProxy/1.1',
            'I-Twilio-Idempotency-Token': randomUUID(),
            'X-Twilio-Signature': twilio.getExpectedTwilioSignature(authToken, url, params),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'] ?? null,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      // A deadline for the whole exchange, as Twilio has, not only for an idle socket.
      const deadline = setTimeout(() => req.destroy(new Error('callback timed out')), CALLBACK_TIMEOUT_MS);
      req.on('close', () => clearTimeout(deadline));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Posts a status callback, retrying a few times; gives up silently. */
  async function deliverCallback(url: string, params: Params, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; attempt <= CALLBACK_RETRY_DELAYS_MS.length; attempt += 1) {
      if (attempt > 0) await sleep(CALLBACK_RETRY_DELAYS_MS[attempt - 1], undefined, { signal });
      try {
        const { status } = await postSigned(url, params, signal);
        if (status >= 200 && status < 300) return;
      } catch {
        if (signal.aborted) return;
      }
    }
  }

  async function messageLifecycle(message: MessageRecord, signal: AbortSignal): Promise<void> {
    const final = message.errorCode === null ? 'delivered' : 'undelivered';
    for (const status of ['sent', final] as const) {
      await sleep(callbackDelayMs, undefined, { signal });
      message.status = status;
      message.updatedAt = new Date();
      if (!message.statusCallback) continue;
      await deliverCallback(
        message.statusCallback,
        {
          MessageSid: message.sid,
          SmsSid: message.sid,
          AccountSid: accountSid,
          From: message.from,
          To: message.to,
          MessageStatus: status,
          SmsStatus: status,
          ApiVersion: API_VERSION,
          ...(status === 'undelivered' ? { ErrorCode: String(message.errorCode) } : {}),
        },
        signal,
      );
    }
  }

  async function callLifecycle(call: CallRecord, signal: AbortSignal): Promise<void> {
    // Like Twilio: without StatusCallbackEvent only 'completed' is reported.
    const wanted = new Set(call.statusCallbackEvents.length > 0 ? call.statusCallbackEvents : ['completed']);
    const steps: { status: CallStatus; event: string }[] = [
      { status: 'initiated', event: 'initiated' },
      { status: 'ringing', event: 'ringing' },
      { status: 'in-progress', event: 'answered' },
      { status: 'completed', event: 'completed' },
    ];
    let sequence = 0;
    for (const { status, event } of steps) {
      await sleep(callbackDelayMs, undefined, { signal });
      const now = new Date();
      call.status = status;
      call.updatedAt = now;
      if (status === 'in-progress') {
        call.startedAt = now;
        call.playedTwiml ??= call.twiml;
        if (call.machineDetection) call.answeredBy = answers.get(call.to) ?? 'human';
      }
      if (status === 'completed') call.endedAt = now;
      if (status === 'in-progress') await asyncAmdVerdict(call, signal);
      if (!call.statusCallback || !wanted.has(event)) continue;
      const params: Params = {
        CallSid: call.sid,
        AccountSid: accountSid,
        From: call.from,
        To: call.to,
        Caller: call.from,
        Called: call.to,
        Direction: 'outbound-api',
        CallStatus: status,
        ApiVersion: API_VERSION,
        CallbackSource: 'call-progress-events',
        SequenceNumber: String(sequence),
        Timestamp: rfc2822(now),
      };
      sequence += 1;
      if (call.answeredBy && !call.asyncAmd) params.AnsweredBy = call.answeredBy;
      if (status === 'completed') params.CallDuration = String(callDuration(call) ?? 0);
      await deliverCallback(call.statusCallback, params, signal);
    }
  }

  /**
   * Posts the answering-machine verdict while the call plays, as Twilio does with AsyncAmd. The call goes on
   * only once the callback answered, so a call update made in response lands before the call ends.
   */
  async function asyncAmdVerdict(call: CallRecord, signal: AbortSignal): Promise<void> {
    if (!call.asyncAmd || !call.asyncAmdStatusCallback || !call.answeredBy) return;
    await deliverCallback(
      call.asyncAmdStatusCallback,
      {
        CallSid: call.sid,
        AccountSid: accountSid,
        AnsweredBy: call.answeredBy,
        MachineDetectionDuration: call.answeredBy === 'human' ? '1200' : '4800',
      },
      signal,
    );
  }

  /** Posts a signed webhook to the consent-api and hands back its answer. */
  async function relay(
    res: Response,
    path: string,
    params: Params,
    extra: Record<string, string>,
  ): Promise<void> {
    if (!consentApiUrl) {
      res.status(503).json({ error: 'consentApiUrl is not configured' });
      return;
    }
    try {
      const url = `${consentApiUrl}${path}`;
      // A kept-alive socket the server has just closed fails at once: one more try on a fresh one.
      const response = await postSigned(url, params, lifecycle.signal).catch((error: unknown) => {
        if ((error as { code?: string }).code !== 'ECONNRESET') throw error;
        return postSigned(url, params, lifecycle.signal);
      });
      res.json({
        status: response.status,
        contentType: response.contentType,
        body: response.text,
        ...extra,
      });
    } catch (err: unknown) {
      res.status(502).json({ error: 'consent-api unreachable', detail: errorMessage(err), ...extra });
    }
  }

  // ---------------------------------------------------------------- resources

  const accountUri = `/${API_VERSION}/Accounts/${accountSid}`;

  function messageResource(m: MessageRecord): object {
    const uri = `${accountUri}/Messages/${m.sid}`;
    return {
      account_sid: accountSid,
      api_version: API_VERSION,
      body: m.body,
      date_created: rfc2822(m.createdAt),
      date_sent: rfc2822(m.createdAt),
      date_updated: rfc2822(m.updatedAt),
      direction: 'outbound-api',
      error_code: m.status === 'undelivered' ? m.errorCode : null,
      error_message: m.status === 'undelivered' ? (ERROR_MESSAGES[m.errorCode ?? 0] ?? null) : null,
      from: m.from,
      messaging_service_sid: m.messagingServiceSid,
      num_media: '0',
      num_segments: '1',
      price: null,
      price_unit: 'USD',
      sid: m.sid,
      status: m.status,
      subresource_uris: { media: `${uri}/Media.json`, feedback: `${uri}/Feedback.json` },
      to: m.to,
      uri: `${uri}.json`,
    };
  }

  function callResource(c: CallRecord): object {
    const uri = `${accountUri}/Calls/${c.sid}`;
    const duration = callDuration(c);
    return {
      account_sid: accountSid,
      annotation: null,
      answered_by: c.answeredBy,
      api_version: API_VERSION,
      caller_name: null,
      date_created: rfc2822(c.createdAt),
      date_updated: rfc2822(c.updatedAt),
      direction: 'outbound-api',
      duration: duration === null ? null : String(duration),
      end_time: c.endedAt ? rfc2822(c.endedAt) : null,
      forwarded_from: null,
      from: c.from,
      from_formatted: c.from,
      group_sid: null,
      parent_call_sid: null,
      phone_number_sid: null,
      price: null,
      price_unit: 'USD',
      queue_time: '0',
      sid: c.sid,
      start_time: c.startedAt ? rfc2822(c.startedAt) : null,
      status: c.status,
      subresource_uris: {
        notifications: `${uri}/Notifications.json`,
        recordings: `${uri}/Recordings.json`,
        events: `${uri}/Events.json`,
        payments: `${uri}/Payments.json`,
      },
      to: c.to,
      to_formatted: c.to,
      trunk_sid: null,
      uri: `${uri}.json`,
    };
  }

  // ---------------------------------------------------------------- Twilio REST API

  const api = express.Router({ mergeParams: true });

  api.use((req, res, next) => {
    if (
      req.params.AccountSid !== accountSid ||
      !authorized(req.headers.authorization, accountSid, authToken)
    ) {
      res.setHeader('WWW-Authenticate', 'Basic realm="Twilio API"');
      sendTwilioError(res, twilioError(401, 20003));
      return;
    }
    next();
  });

  api.post('/Messages.json', (req, res) => {
    const to = param(req.body, 'To');
    const from = param(req.body, 'From');
    const body = param(req.body, 'Body');
    const messagingServiceSid = param(req.body, 'MessagingServiceSid') ?? null;
    if (!to) return sendTwilioError(res, twilioError(400, 21604));
    if (!from && !messagingServiceSid) return sendTwilioError(res, twilioError(400, 21603));
    if (body === undefined || body === '') return sendTwilioError(res, twilioError(400, 21602));

    const fault = takeFault(to);
    const rejection = rejectingFault(fault);
    if (rejection) return sendTwilioError(res, rejection);

    const now = new Date();
    const message: MessageRecord = {
      sid: newSid('SM'),
      to,
      from: from ?? messagingServiceSid ?? '',
      body,
      status: 'queued',
      statusCallback: param(req.body, 'StatusCallback') ?? null,
      receivedAt: now.toISOString(),
      messagingServiceSid,
      errorCode: fault?.kind === 'undelivered' ? (fault.code ?? 30006) : null,
      createdAt: now,
      updatedAt: now,
    };
    messages.push(message);
    const answer = messageResource(message);
    background((signal) => messageLifecycle(message, signal));
    if (fault?.kind === 'http500AfterRecord') return sendTwilioError(res, twilioError(500, 20500));
    res.status(201).json(answer);
  });

  readRoutes('Messages', 'messages', 'DateSent', () => messages, messageResource);

  /** The list (filtered, paged) and fetch-by-sid routes of one resource, as Twilio serves them. */
  function readRoutes<T extends { sid: string; to: string; from: string; createdAt: Date }>(
    resource: 'Messages' | 'Calls',
    listKey: 'messages' | 'calls',
    dateFilter: 'DateSent' | 'StartTime',
    records: () => T[],
    toResource: (record: T) => object,
  ): void {
    api.get(`/${resource}.json`, (req, res) => {
      const filtered = filterRecords(req.query, records(), dateFilter, (r) => r.createdAt);
      if ('error' in filtered) return sendTwilioError(res, filtered.error);
      sendPage(req, res, `${accountUri}/${resource}.json`, listKey, filtered.items.map(toResource));
    });
    api.get(`/${resource}/:sid.json`, (req, res) => {
      const record = records().find((r) => r.sid === req.params.sid);
      if (!record) return sendTwilioError(res, twilioError(404, 20404));
      res.json(toResource(record));
    });
  }

  api.post('/Calls.json', (req, res) => {
    const to = param(req.body, 'To');
    const from = param(req.body, 'From');
    const twiml = param(req.body, 'Twiml') ?? null;
    const url = param(req.body, 'Url') ?? null;
    if (!to) return sendTwilioError(res, twilioError(400, 21201));
    if (!from) return sendTwilioError(res, twilioError(400, 21213));
    if (!twiml && !url) return sendTwilioError(res, twilioError(400, 21205));

    const fault = takeFault(to);
    const rejection = rejectingFault(fault);
    if (rejection) return sendTwilioError(res, rejection);

    const now = new Date();
    const call: CallRecord = {
      sid: newSid('CA'),
      to,
      from,
      twiml,
      url,
      status: 'queued',
      statusCallback: param(req.body, 'StatusCallback') ?? null,
      statusCallbackEvents: params(req.body, 'StatusCallbackEvent').flatMap((e) =>
        e.split(/[\s,]+/).filter(Boolean),
      ),
      machineDetection: param(req.body, 'MachineDetection') ?? null,
      asyncAmd: param(req.body, 'AsyncAmd') === 'true',
      asyncAmdStatusCallback: param(req.body, 'AsyncAmdStatusCallback') ?? null,
      answeredBy: null,
      playedTwiml: null,
      receivedAt: now.toISOString(),
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      endedAt: null,
    };
    calls.push(call);
    const answer = callResource(call);
    background((signal) => callLifecycle(call, signal));
    if (fault?.kind === 'http500AfterRecord') return sendTwilioError(res, twilioError(500, 20500));
    res.status(201).json(answer);
  });

  readRoutes('Calls', 'calls', 'StartTime', () => calls, callResource);

  // A call update: new TwiML for a live call (what Twilio's calls(sid).update({ twiml }) posts).
  api.post('/Calls/:sid.json', (req, res) => {
    const call = calls.find((c) => c.sid === req.params.sid);
    if (!call) return sendTwilioError(res, twilioError(404, 20404));
    const twiml = param(req.body, 'Twiml');
    const url = param(req.body, 'Url');
    if (!twiml && !url) return sendTwilioError(res, twilioError(400, 21205));
    if (call.status === 'completed') return sendTwilioError(res, twilioError(400, 21220));
    call.twiml = twiml ?? null;
    call.url = url ?? null;
    call.playedTwiml = twiml ?? null;
    call.updatedAt = new Date();
    res.json(callResource(call));
  });

  // ---------------------------------------------------------------- sandbox control

  const control = express.Router();

  control.get('/messages', (req, res) => {
    const to = param(req.query, 'to');
    res.json(messages.filter((m) => to === undefined || m.to === to).map(messageSnapshot));
  });

  control.delete('/messages', (_req, res) => {
    reset();
    res.status(204).end();
  });

  control.get('/calls', (req, res) => {
    const to = param(req.query, 'to');
    res.json(calls.filter((c) => to === undefined || c.to === to).map(callSnapshot));
  });

  control.get('/faults', (_req, res) => {
    res.json([...faults].map(([to, active]) => ({ to, fault: active.fault, remaining: active.remaining })));
  });

  control.post('/faults', (req, res) => {
    const body: unknown = req.body;
    const to = field(body, 'to');
    const fault = parseFault(isRecord(body) ? body.fault : undefined);
    if (!to) return badRequest(res, 'to must be a non-empty string');
    if (typeof fault === 'string') return badRequest(res, fault);
    setFault(to, fault);
    res.json({ to, fault });
  });

  control.delete('/faults', (_req, res) => {
    faults.clear();
    res.status(204).end();
  });

  control.post('/answers', (req, res) => {
    const body: unknown = req.body;
    const to = field(body, 'to');
    const answeredBy = ANSWERED_BY.find((a) => a === field(body, 'answeredBy'));
    if (!to) return badRequest(res, 'to must be a non-empty string');
    if (!answeredBy) return badRequest(res, `answeredBy must be one of ${ANSWERED_BY.join(', ')}`);
    answers.set(to, answeredBy);
    res.json({ to, answeredBy });
  });

  control.post('/chaos', (req, res) => {
    const options = parseChaos(req.body);
    if (typeof options === 'string') return badRequest(res, options);
    setChaos(options);
    res.json(options);
  });

  control.delete('/chaos', (_req, res) => {
    chaos = null;
    res.status(204).end();
  });

  control.post('/inbound', async (req, res) => {
    const body: unknown = req.body;
    const from = field(body, 'from');
    const to = field(body, 'to');
    const text = field(body, 'body');
    const messageSid = field(body, 'messageSid') ?? newSid('SM');
    if (!from || !to || text === undefined) return badRequest(res, 'from, to and body must be strings');
    const webhook: Params = {
      MessageSid: messageSid,
      SmsSid: messageSid,
      SmsMessageSid: messageSid,
      AccountSid: accountSid,
      From: from,
      To: to,
      Body: text,
      NumMedia: '0',
      NumSegments: '1',
      SmsStatus: 'received',
      ApiVersion: API_VERSION,
    };
    await relay(res, '/webhooks/twilio/sms', webhook, { messageSid });
  });

  control.post('/gather', async (req, res) => {
    const body: unknown = req.body;
    const callSid = field(body, 'callSid');
    const digits = field(body, 'digits');
    const call = calls.find((c) => c.sid === callSid);
    const from = field(body, 'from') ?? call?.from;
    const to = field(body, 'to') ?? call?.to;
    if (!callSid || digits === undefined || !from || !to) {
      return badRequest(
        res,
        'callSid and digits must be strings; from and to too unless callSid is a recorded call',
      );
    }
    const webhook: Params = {
      CallSid: callSid,
      AccountSid: accountSid,
      From: from,
      To: to,
      Caller: from,
      Called: to,
      Direction: 'outbound-api',
      Digits: digits,
      CallStatus: 'in-progress',
      ApiVersion: API_VERSION,
    };
    await relay(res, '/webhooks/twilio/voice/gather', webhook, { callSid });
  });

  // ---------------------------------------------------------------- server

  const app = express();
  app.disable('x-powered-by');
  app.use(express.urlencoded({ extended: false }));
  app.use(express.json());
  app.use(`/${API_VERSION}/Accounts/:AccountSid`, api);
  app.use('/sandbox', control);
  app.use((req, res) => {
    sendTwilioError(res, {
      status: 404,
      code: 20404,
      message: `The requested resource ${req.path} was not found`,
    });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = httpStatusOf(err);
    sendTwilioError(res, { status, code: status === 500 ? 20500 : 20001, message: errorMessage(err) });
  });

  const server: Server = createServer(app);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | null = null;
  function close(): Promise<void> {
    closing ??= new Promise<void>((resolve, reject) => {
      lifecycle.abort();
      httpAgent.destroy();
      httpsAgent.destroy();
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
    return closing;
  }

  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    messages: () => messages.map(messageSnapshot),
    calls: () => calls.map(callSnapshot),
    reset,
    setFault,
    clearFaults: () => faults.clear(),
    answerAs: (to, answeredBy) => answers.set(to, answeredBy),
    setChaos,
    close,
  };
}

// ------------------------------------------------------------------ helpers

function newSid(prefix: 'SM' | 'CA'): string {
  return prefix + randomBytes(16).toString('hex');
}

/** RFC 2822 date as Twilio writes it: "Mon, 23 Nov 2026 01:30:00 +0000". */
function rfc2822(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

function callDuration(call: CallRecord): number | null {
  if (!call.startedAt || !call.endedAt) return null;
  return Math.max(1, Math.ceil((call.endedAt.getTime() - call.startedAt.getTime()) / 1000));
}

function messageSnapshot(m: MessageRecord): SandboxMessage {
  const { sid, to, from, body, status, statusCallback, receivedAt } = m;
  return { sid, to, from, body, status, statusCallback, receivedAt };
}

function callSnapshot(c: CallRecord): SandboxCall {
  const {
    sid,
    to,
    from,
    twiml,
    url,
    status,
    statusCallback,
    statusCallbackEvents,
    machineDetection,
    asyncAmd,
    asyncAmdStatusCallback,
    answeredBy,
    playedTwiml,
    receivedAt,
  } = c;
  return {
    sid,
    to,
    from,
    twiml,
    url,
    status,
    statusCallback,
    statusCallbackEvents: [...statusCallbackEvents],
    machineDetection,
    asyncAmd,
    asyncAmdStatusCallback,
    answeredBy,
    playedTwiml,
    receivedAt,
  };
}

function twilioError(status: number, code: number): TwilioError {
  return { status, code, message: ERROR_MESSAGES[code] ?? `Sandbox error ${code}` };
}

function sendTwilioError(res: Response, error: TwilioError): void {
  res.status(error.status).json({
    code: error.code,
    message: error.message,
    more_info: `https://www.twilio.com/docs/errors/${error.code}`,
    status: error.status,
  });
}

function badRequest(res: Response, message: string): void {
  res.status(400).json({ error: message });
}

function authorized(header: string | undefined, accountSid: string, authToken: string): boolean {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return false;
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(
    digest(Buffer.from(match[1], 'base64').toString('utf8')),
    digest(`${accountSid}:${authToken}`),
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A string field of a parsed JSON body. */
function field(source: unknown, key: string): string | undefined {
  const value = isRecord(source) ? source[key] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/** A form or query parameter (the first one, if repeated). */
function param(source: unknown, key: string): string | undefined {
  return params(source, key)[0];
}

/** Every value of a form or query parameter that may repeat. */
function params(source: unknown, key: string): string[] {
  const value = isRecord(source) ? source[key] : undefined;
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

interface DateBound {
  time: number;
  dateOnly: boolean;
}

/** Twilio date filters take YYYY-MM-DD, or YYYY-MM-DDTHH:mm:ssZ as the twilio package sends. */
function parseDateFilter(value: string): DateBound | null {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return { time: Date.parse(`${value}T00:00:00Z`), dateOnly: true };
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : { time, dateOnly: false };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Applies To, From and the date filters (`<Name>`, `<Name>>`, `<Name><`: on, on or after, on or before) and
 * sorts newest first, as Twilio lists do.
 */
function filterRecords<T extends { to: string; from: string }>(
  query: unknown,
  records: T[],
  dateName: 'DateSent' | 'StartTime',
  dateOf: (record: T) => Date,
): { items: T[] } | { error: TwilioError } {
  const to = param(query, 'To');
  const from = param(query, 'From');
  const bounds: { on?: DateBound; after?: DateBound; before?: DateBound } = {};
  for (const [key, suffix] of [
    ['on', ''],
    ['after', '>'],
    ['before', '<'],
  ] as const) {
    const raw = param(query, `${dateName}${suffix}`);
    if (raw === undefined) continue;
    const bound = parseDateFilter(raw);
    if (!bound)
      return { error: { status: 400, code: 20001, message: `Invalid ${dateName}${suffix}: ${raw}` } };
    bounds[key] = bound;
  }
  const items = records.filter((r) => {
    const t = dateOf(r).getTime();
    if (to !== undefined && r.to !== to) return false;
    if (from !== undefined && r.from !== from) return false;
    if (bounds.on) {
      const dayStart = bounds.on.time - (bounds.on.time % DAY_MS);
      if (t < dayStart || t >= dayStart + DAY_MS) return false;
    }
    if (bounds.after && t < bounds.after.time) return false;
    if (bounds.before && t > bounds.before.time) return false;
    return true;
  });
  return { items: items.reverse() };
}

function sendPage(
  req: Request,
  res: Response,
  path: string,
  key: 'messages' | 'calls',
  resources: object[],
): void {
  const requestedSize = Number(param(req.query, 'PageSize') ?? DEFAULT_PAGE_SIZE);
  const pageSize = Number.isInteger(requestedSize) ? Math.min(Math.max(requestedSize, 1), MAX_PAGE_SIZE) : 50;
  const requestedPage = Number(param(req.query, 'Page') ?? 0);
  const page = Number.isInteger(requestedPage) && requestedPage > 0 ? requestedPage : 0;
  const start = page * pageSize;
  const items = resources.slice(start, start + pageSize);

  const pageUri = (n: number): string => {
    const query = new URLSearchParams();
    for (const name of [
      'To',
      'From',
      'DateSent',
      'DateSent>',
      'DateSent<',
      'StartTime',
      'StartTime>',
      'StartTime<',
    ]) {
      const value = param(req.query, name);
      if (value !== undefined) query.set(name, value);
    }
    query.set('PageSize', String(pageSize));
    query.set('Page', String(n));
    return `${path}?${query.toString()}`;
  };

  res.json({
    [key]: items,
    page,
    page_size: pageSize,
    start,
    end: Math.max(start, start + items.length - 1),
    uri: pageUri(page),
    first_page_uri: pageUri(0),
    next_page_uri: start + pageSize < resources.length ? pageUri(page + 1) : null,
    previous_page_uri: page > 0 ? pageUri(page - 1) : null,
  });
}

/** Validates a fault given over HTTP or in-process. */
function parseFault(value: unknown): Fault | string {
  if (!isRecord(value)) return 'fault must be an object';
  const { kind, code, times } = value;
  const validKind = FAULT_KINDS.find((k) => k === kind);
  if (!validKind) return `fault.kind must be one of ${FAULT_KINDS.join(', ')}`;
  if (code !== undefined && !isInteger(code)) return 'fault.code must be an integer';
  if (validKind === 'error' && code === undefined) return "fault.code is required for kind 'error'";
  if (times !== undefined && !(isInteger(times) && times > 0))
    return 'fault.times must be a positive integer';
  return { kind: validKind, code, times };
}

/** Validates chaos options given over HTTP or in-process. */
function parseChaos(value: unknown): ChaosOptions | string {
  if (!isRecord(value)) return 'chaos must be an object';
  const { rate, kinds, seed } = value;
  if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) return 'rate must be a number between 0 and 1';
  let validKinds: ChaosKind[] | undefined;
  if (kinds !== undefined) {
    validKinds = Array.isArray(kinds) ? kinds.flatMap((k) => CHAOS_KINDS.filter((c) => c === k)) : [];
    if (!Array.isArray(kinds) || validKinds.length !== kinds.length) {
      return `kinds must be a list of ${CHAOS_KINDS.join(', ')}`;
    }
  }
  if (seed !== undefined && !isInteger(seed)) return 'seed must be an integer';
  return { rate, kinds: validKinds, seed };
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/** Small seeded PRNG, so a chaos run can be replayed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function httpStatusOf(err: unknown): number {
  const status = isRecord(err) ? err.status : undefined;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
