import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import express from 'express';
import pino, { type LoggerOptions } from 'pino';
import pinoHttp, { type Options } from 'pino-http';
import request from 'supertest';
import { loadConfig } from './config/config';
import { requestIdMiddleware } from './http/request-id';
import { loggerParams } from './logging';
import { startTelemetry, stopTelemetry } from './telemetry/sdk';

const KEYS = {
  PHI_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`,
  PHI_INDEX_KEY: Buffer.alloc(32, 2).toString('base64'),
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('logs: request ids, trace ids, JSON', () => {
  const lines: Array<Record<string, unknown>> = [];
  let app: express.Express;

  beforeAll(() => {
    startTelemetry({
      app: 'test',
      otel: { protocol: 'http/protobuf' },
      spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
    });
    const params = loggerParams(
      loadConfig({ ...KEYS, NODE_ENV: 'test', LOG_LEVEL: 'info', LOG_FORMAT: 'json' }),
      'test-app',
    );
    const stream = { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) };
    app = express();
    app.use(requestIdMiddleware);
    app.use(pinoHttp(params.pinoHttp as Options, stream));
    app.use(express.json());
    app.post('/webhooks/twilio/status', (req, res) => {
      res.status(req.query.refuse ? 403 : 200).end();
    });
    app.post('/v1/patients', (req, res) => {
      trace.getTracer('test').startActiveSpan('work', (span) => {
        req.log.info('inside the handler');
        span.end();
        res.status(201).json({ ok: true });
      });
    });
  });
  afterAll(() => stopTelemetry());
  beforeEach(() => lines.splice(0));

  it('reuses a safe incoming X-Request-Id, echoes it, and logs it', async () => {
    const response = await request(app)
      .post('/v1/patients')
      .set('X-Request-Id', 'abc-123.DEF_4')
      .send({})
      .expect(201);
    expect(response.headers['x-request-id']).toBe('abc-123.DEF_4');
    expect(lines.map((line) => (line.req as { id?: string } | undefined)?.id)).toEqual([
      'abc-123.DEF_4',
      'abc-123.DEF_4',
    ]);
  });

  it('replaces an unsafe or missing X-Request-Id by a fresh UUID', async () => {
    for (const incoming of ['<script>', 'has space', '+1 415 555 2671', 'x'.repeat(200), undefined]) {
      const call = request(app).post('/v1/patients');
      if (incoming !== undefined) call.set('X-Request-Id', incoming);
      const response = await call.send({}).expect(201);
      expect(response.headers['x-request-id']).toMatch(UUID);
    }
  });

  it('puts the active trace and span ids on a log line, and never the body', async () => {
    await request(app).post('/v1/patients').send({ firstName: 'Ada', phone: '+14155552671' }).expect(201);
    const inside = lines.find((line) => line.msg === 'inside the handler');
    expect(inside).toMatchObject({
      name: 'test-app',
      trace_id: expect.stringMatching(/^[0-9a-f]{32}$/),
      span_id: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(JSON.stringify(lines)).not.toContain('4155552671');
    expect(JSON.stringify(lines)).not.toContain('Ada');
  });

  it('logs JSON unless asked for pretty (or on a terminal in development)', () => {
    const json = loggerParams(loadConfig({ NODE_ENV: 'development', LOG_FORMAT: 'json' }), 'x')
      .pinoHttp as Options;
    expect(json.transport).toBeUndefined();
    const pretty = loggerParams(
      loadConfig({ ...KEYS, NODE_ENV: 'production', TWILIO_SANDBOX: '1', LOG_FORMAT: 'pretty' }),
      'x',
    ).pinoHttp as Options;
    expect(pretty.transport).toMatchObject({ target: 'pino-pretty' });
  });

  it("keeps Twilio's accepted delivery reports out of the info log, but not a refused one", async () => {
    await request(app).post('/webhooks/twilio/status?attemptId=x').expect(200);
    await request(app).post('/webhooks/twilio/status?refuse=1').expect(403);
    await request(app).post('/v1/patients').send({}).expect(201);
    const completed = lines.filter((line) => line.msg === 'request completed');
    expect(
      completed.map((line) => [
        (line.req as { path: string }).path,
        (line.res as { statusCode: number }).statusCode,
      ]),
    ).toEqual([
      ['/webhooks/twilio/status', 403],
      ['/v1/patients', 201],
    ]);
  });
});

describe('logs: no PHI at any depth', () => {
  const phone = '+14155557391';
  const lines: string[] = [];
  const params = loggerParams(
    loadConfig({ ...KEYS, NODE_ENV: 'test', LOG_LEVEL: 'trace', LOG_FORMAT: 'json' }),
    'test-app',
  );
  const logger = pino(params.pinoHttp as LoggerOptions, { write: (line: string) => lines.push(line) });
  beforeEach(() => lines.splice(0));

  it('censors phones, names and texts however deep they sit, and keeps ids and error messages', () => {
    const patient = {
      id: 'a1b2',
      phone,
      firstName: 'Adaline',
      lastName: 'Lovelace',
      patientName: 'Adaline Lovelace',
    };
    logger.info({
      phone,
      To: phone,
      From: '+14155550100',
      name: 'Adaline Lovelace',
      twiml: '<Say>Hi Adaline</Say>',
    });
    logger.info({ patient, notificationId: 'n-42' });
    logger.warn({ job: { data: { message: { to: phone, Body: 'Metformin is ready, Adaline' } } } });
    logger.debug({ a: { b: { c: { d: { e: { phoneNumber: phone, evidence: 'signed by Adaline' } } } } } });
    logger.info({ attempts: [{ to: phone }, [{ body: 'Metformin is ready' }]] });
    const failed = Object.assign(new Error('insert failed'), { parameters: [phone, 'Adaline'] });
    logger.error({ err: failed }, 'query failed');

    const output = lines.join('\n');
    expect(lines).toHaveLength(6);
    for (const secret of ['4155557391', 'Adaline', 'Lovelace', 'Metformin', '4155550100'])
      expect(output).not.toContain(secret);
    const [first, second, , , , error] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first).toMatchObject({ phone: '[redacted]', To: '[redacted]', name: '[redacted]' });
    expect(second).toMatchObject({ patient: { id: 'a1b2', phone: '[redacted]' }, notificationId: 'n-42' });
    expect(error).toMatchObject({
      msg: 'query failed',
      err: { message: 'insert failed', parameters: '[redacted]' },
    });
  });
});
