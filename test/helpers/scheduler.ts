import { Queue } from 'bullmq';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { SchedulerModule } from '../../apps/scheduler/src/scheduler.module';
import { startTestApp, type TestApp } from './app';
import type { PatientFixture, PharmacyFixture } from './given';

export interface SchedulerUnderTest {
  t: TestApp;
  /** A pharmacy that sends ready notices at once (`readyCoalesceSeconds: 0`). */
  pharmacy: PharmacyFixture;
  /** One of its patients, opted in to texts. */
  patient: PatientFixture;
  /** A staff key of that pharmacy. */
  staff: string;
  /** BullMQ's own view of the delivery queue, for inspecting what was enqueued. */
  queue: Queue;
  close(): Promise<void>;
}

/** The scheduler booted in-process with one pharmacy, one opted-in patient and a staff key. */
export async function startSchedulerWithPatient(): Promise<SchedulerUnderTest> {
  const t = await startTestApp((config) => SchedulerModule.forRoot(config), {
    largeBodyRoutes: ['/v1/fills'],
  });
  const pharmacy = await t.given.pharmacy({ settings: { readyCoalesceSeconds: 0 } });
  const patient = await t.given.patient(pharmacy, { consent: ['sms'] });
  const staff = await t.given.apiKey('staff', pharmacy);
  const queue = new Queue(QueueName.Delivery, {
    connection: { host: '127.0.0.1', port: 6379 },
    prefix: t.config.queue.prefix,
  });
  return {
    t,
    pharmacy,
    patient,
    staff,
    queue,
    async close() {
      await queue.obliterate({ force: true });
      await queue.close();
      await t.close();
    },
  };
}

/** An ISO timestamp this many hours ago. */
export const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000).toISOString();
