import type { JobsOptions } from 'bullmq';

/** Every queue and job rxnotify runs. Producers and processors import these; nothing names a queue by string. */
export enum QueueName {
  Delivery = 'delivery',
  Scans = 'scans',
  Retention = 'retention',
}

export enum JobName {
  SendNotification = 'send-notification',
  Scan = 'scan',
  PurgeMessageBodies = 'purge-message-bodies',
}

/** The W3C trace context of the span that enqueued a job (ids and flags only), so the worker continues its trace. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/** Payloads carry ids only: Redis never holds a phone, name, drug or message body. */
export interface JobPayloads {
  [JobName.SendNotification]: { notificationId: string; trace?: TraceCarrier };
  [JobName.Scan]: Record<string, never>;
  [JobName.PurgeMessageBodies]: Record<string, never>;
}

export type JobOf<N extends JobName> = JobPayloads[N];

export const JOB_QUEUE: Record<JobName, QueueName> = {
  [JobName.SendNotification]: QueueName.Delivery,
  [JobName.Scan]: QueueName.Scans,
  [JobName.PurgeMessageBodies]: QueueName.Retention,
};

export const JOB_OPTIONS: Record<JobName, JobsOptions> = {
  [JobName.SendNotification]: {
    attempts: 10,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
    removeOnComplete: { age: 3600, count: 10000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  [JobName.Scan]: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5000 },
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 100 },
  },
  [JobName.PurgeMessageBodies]: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 60_000 },
    removeOnComplete: { count: 30 },
    removeOnFail: { count: 30 },
  },
};
