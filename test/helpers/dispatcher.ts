import { Queue } from 'bullmq';
import type { Clock } from '../../libs/common/src/clock/clock';
import { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } from '../../libs/common/src/config/config';
import { NotificationQueue } from '../../libs/common/src/queue/notification-queue';
import { QueueName } from '../../libs/common/src/queue/queue.catalog';
import { startSandbox, type Sandbox } from '../../tools/twilio-sandbox/src/sandbox';
import { DispatcherModule } from '../../apps/dispatcher/src/dispatcher.module';
import { startTestApp, type TestApp } from './app';
import type { TestDatabase } from './database';
import { freePort } from './wait';

export interface DispatcherUnderTest extends TestApp {
  sandbox: Sandbox;
  /** The producer the scheduler uses: enqueue by notification id. */
  queue: NotificationQueue;
  /** BullMQ's own view of the delivery queue, for inspecting jobs. */
  jobs: Queue;
  /** The dispatcher's public URL, as the sandbox calls it back. */
  url: string;
}

/**
 * The dispatcher booted in-process, listening (the sandbox posts signed status callbacks to it), sending
 * through the real `twilio` package to a fresh Twilio sandbox. `close()` stops both and clears the queue.
 */
export async function startDispatcherWithSandbox(
  options: {
    clock?: Clock;
    database?: TestDatabase;
    env?: Record<string, string>;
    providerUrl?: (sandbox: Sandbox) => string;
  } = {},
): Promise<DispatcherUnderTest> {
  const sandbox = await startSandbox({
    port: 0,
    accountSid: SANDBOX_ACCOUNT_SID,
    authToken: SANDBOX_AUTH_TOKEN,
    callbackDelayMs: 5,
  });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const app = await startTestApp((config) => DispatcherModule.forRoot(config, { clock: options.clock }), {
    database: options.database,
    listenPort: port,
    env: {
      TWILIO_API_BASE_URL: options.providerUrl?.(sandbox) ?? sandbox.url,
      DISPATCHER_PUBLIC_URL: url,
      ...options.env,
    },
  });
  const jobs = new Queue(QueueName.Delivery, {
    connection: { host: '127.0.0.1', port: 6379 },
    prefix: app.config.queue.prefix,
  });
  return {
    ...app,
    sandbox,
    queue: app.app.get(NotificationQueue),
    jobs,
    url,
    async close() {
      await app.close();
      await jobs.obliterate({ force: true });
      await jobs.close();
      await sandbox.close();
    },
  };
}
