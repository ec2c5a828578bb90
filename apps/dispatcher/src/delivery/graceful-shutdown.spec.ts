import { createServer, request as httpRequest, type Server } from 'node:http';
import { Queue } from 'bullmq';
import { Client } from 'pg';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } from '@rxnotify/common/config/config';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { startSandbox, type Sandbox } from '../../../../tools/twilio-sandbox/src/sandbox';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { freePort, waitFor } from '../../../../test/helpers/wait';
import { DispatcherModule } from '../dispatcher.module';

/** A provider that takes its time: every request is held before being passed to the sandbox. */
function slowProxy(target: string, delayMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    setTimeout(() => {
      const forward = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(forward);
    }, delayMs);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise((done) => server.close(() => done())),
      });
    }),
  );
}

describe('graceful shutdown (SIGTERM mid-send)', () => {
  const clock = new FakeClock(new Date('2026-06-10T16:00:00Z'));
  let database: TestDatabase;
  let sandbox: Sandbox;
  let proxy: { url: string; close: () => Promise<void> };
  const prefix = `rxt-gs-${Date.now().toString(36)}`;

  const boot = async () => {
    const port = await freePort();
    return startTestApp((config) => DispatcherModule.forRoot(config, { clock }), {
      database,
      listenPort: port,
      env: {
        TWILIO_API_BASE_URL: proxy.url,
        DISPATCHER_PUBLIC_URL: `http://127.0.0.1:${port}`,
        QUEUE_PREFIX: prefix,
      },
    });
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    sandbox = await startSandbox({
      port: 0,
      accountSid: SANDBOX_ACCOUNT_SID,
      authToken: SANDBOX_AUTH_TOKEN,
      callbackDelayMs: 5,
    });
    proxy = await slowProxy(sandbox.url, 400);
  });
  afterAll(async () => {
    const raw = new Queue(QueueName.Delivery, { connection: { host: '127.0.0.1', port: 6379 }, prefix });
    await raw.obliterate({ force: true });
    await raw.close();
    await proxy.close();
    await sandbox.close();
    await database.drop();
  });

  it('finishes the sends in flight, leaves the rest owed, and a restart completes them exactly once', async () => {
    let first: TestApp | null = await boot();
    const pharmacy = await first.given.pharmacy({ settings: { sendRatePerSecond: 1000 } });
    const patients = [];
    for (let i = 0; i < 60; i++)
      patients.push(await first.given.patient(pharmacy, { phone: `+1415555${6000 + i}`, consent: ['sms'] }));
    const notices = [];
    for (const p of patients) notices.push(await first.given.notice(p, { dueAt: clock.now() }));
    await first.app
      .get(NotificationQueue)
      .enqueue(notices.map((n) => ({ notificationId: n.notificationId })));

    await waitFor('sends in flight', async () => {
      const [{ n }] = await first!.db.query(
        `SELECT count(*)::int AS n FROM messages WHERE status = 'intent'`,
      );
      return n > 0;
    });
    await first.app.close(); // what SIGTERM does (enableShutdownHooks)
    first = null;

    // Nothing was left between intent and result: every attempt that started finished.
    const check = new Client({ connectionString: database.url });
    await check.connect();
    const { rows } = await check.query<{ open: number }>(
      `SELECT count(*)::int AS open FROM messages WHERE status = 'intent'`,
    );
    await check.end();
    expect(rows[0].open).toBe(0);

    const second = await boot();
    try {
      await waitFor(
        'all sent',
        async () => {
          const [{ n }] = await second.db.query(
            `SELECT count(*)::int AS n FROM notifications WHERE state IN ('sent', 'delivered')`,
          );
          return n === 60;
        },
        30000,
      );
      for (const p of patients) expect(sandbox.messages().filter((m) => m.to === p.phone)).toHaveLength(1);
    } finally {
      await second.close();
    }
  }, 60000);
});
