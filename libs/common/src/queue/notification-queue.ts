import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { withProducerSpan } from '../telemetry/job-context';
import { JOB_OPTIONS, JobName, QueueName, type JobOf } from './queue.catalog';

export interface Enqueue {
  notificationId: string;
  /** When the notification may go out; a job due in the past runs at once. */
  notBefore?: Date;
  /**
   * A second delivery of a notification whose first job may still be finishing (a text that bounced off a
   * landline, to be called instead): the job id gets this suffix so it is not mistaken for the first.
   */
  redelivery?: 'landline';
}

/** Producer side of the delivery queue. The notification id is the job id, so a re-enqueue is a no-op. */
@Injectable()
export class NotificationQueue {
  constructor(
    @InjectQueue(QueueName.Delivery) private readonly queue: Queue<JobOf<JobName.SendNotification>>,
  ) {}

  /** Each job carries the enqueuing span's trace context, so its delivery joins the same trace. */
  async enqueue(items: Enqueue[], now: Date = new Date()): Promise<void> {
    if (items.length === 0) return;
    const ids = items.map((item) => item.notificationId);
    await withProducerSpan(QueueName.Delivery, ids, (trace) =>
      this.queue.addBulk(
        items.map(({ notificationId, notBefore, redelivery }) => ({
          name: JobName.SendNotification,
          data: trace ? { notificationId, trace } : { notificationId },
          opts: {
            ...JOB_OPTIONS[JobName.SendNotification],
            jobId: redelivery ? `${notificationId}-${redelivery}` : notificationId,
            delay: notBefore ? Math.max(0, notBefore.getTime() - now.getTime()) : 0,
          },
        })),
      ),
    );
  }
}
