import { Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, register, Registry } from 'prom-client';
import { routeTemplate } from '../http/route-template';
import type { NotificationKind } from '../messaging/templates';
import { CatalogQueues, within } from './catalog-queues';

export type MessageChannel = 'sms' | 'voice';
/** What became of one send attempt: accepted by the provider, failed for good, or to be retried. */
export type MessageStatus = 'sent' | 'failed' | 'retried';
export type ConsentStatusChange = 'opted_in' | 'opted_out';

/** Consent sources the product itself writes; anything else (a staff or PhMS free-text source) counts as `api`. */
const KNOWN_CONSENT_SOURCES = new Set(['sms_keyword', 'voice_keypress', 'carrier', 'api']);
/** A scrape must answer even when Redis does not. */
const QUEUE_COUNT_TIMEOUT_MS = 1000;
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const WAIT_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600];

let processMetricsCollected = false;

/**
 * The app's Prometheus metrics. Product counters (messages, suppressions, consent changes) are incremented
 * by the code that decides them through the typed methods below; job, queue and HTTP metrics are collected
 * here. Label values are fixed vocabularies and route templates, never ids, phones or free text.
 */
@Injectable()
export class Metrics {
  /** This app's metrics; process metrics (memory, event loop, GC) sit in prom-client's default registry. */
  readonly registry = new Registry();

  private readonly messages = new Counter({
    name: 'messages_total',
    help: 'Send attempts by notification kind, channel and result (sent = accepted by the provider).',
    labelNames: ['kind', 'channel', 'status'] as const,
    registers: [this.registry],
  });
  private readonly suppressions = new Counter({
    name: 'suppressions_total',
    help: 'Notifications not sent because policy said no (opted_out, no_consent, ...).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly consentChanges = new Counter({
    name: 'consent_changes_total',
    help: 'Consent changes by source (sms_keyword, voice_keypress, carrier, api) and new status.',
    labelNames: ['source', 'status'] as const,
    registers: [this.registry],
  });
  private readonly jobDuration = new Histogram({
    name: 'job_duration_seconds',
    help: 'Time a worker spent on one job attempt, by queue and outcome (completed, failed).',
    labelNames: ['queue', 'status'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  private readonly jobWait = new Histogram({
    name: 'job_wait_seconds',
    help: 'Time from a job being due (enqueued, plus any deliberate delay) to a worker starting it.',
    labelNames: ['queue'] as const,
    buckets: WAIT_SECONDS,
    registers: [this.registry],
  });
  private readonly httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });

  constructor(catalog: CatalogQueues) {
    if (!processMetricsCollected) {
      collectDefaultMetrics();
      processMetricsCollected = true;
    }
    const queues = [...catalog.all.values()];
    new Gauge({
      name: 'queue_depth',
      help: 'Jobs per queue and state (waiting, active, delayed, failed, ...), read from Redis at scrape time.',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const counts = await within(
          Promise.all(queues.map((queue) => queue.getJobCounts())),
          QUEUE_COUNT_TIMEOUT_MS,
        );
        // Redis not answering: no samples rather than stale ones (the health check says why).
        if (!counts) return;
        counts.forEach((byState, index) => {
          for (const [state, count] of Object.entries(byState))
            this.set({ queue: queues[index].name, state }, count);
        });
      },
    });
  }

  /** The provider accepted a message (`status` sent), refused it for good (`failed`), or it will be retried. */
  message(kind: NotificationKind, channel: MessageChannel, status: MessageStatus): void {
    this.messages.inc({ kind, channel, status });
  }

  messageSent(kind: NotificationKind, channel: MessageChannel): void {
    this.message(kind, channel, 'sent');
  }

  /** A notification policy held back; `reason` is the policy's word (opted_out, no_consent, ...), never free text. */
  suppressed(reason: string): void {
    this.suppressions.inc({ reason });
  }

  /** `source` may be a caller's free text: anything but the product's own sources is counted as `api`. */
  consentChanged(source: string, status: ConsentStatusChange): void {
    this.consentChanges.inc({ source: KNOWN_CONSENT_SOURCES.has(source) ? source : 'api', status });
  }

  jobFinished(queue: string, status: 'completed' | 'failed', seconds: number): void {
    this.jobDuration.observe({ queue, status }, seconds);
  }

  jobStarted(queue: string, waitedSeconds: number): void {
    this.jobWait.observe({ queue }, Math.max(0, waitedSeconds));
  }

  /**
   * Express middleware counting every request once it is answered, by route template (`/v1/patients/:id`),
   * never the raw URL. A request no route matched (404s, bodies refused before routing) is `unmatched`.
   */
  httpMiddleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      const started = process.hrtime.bigint();
      res.once('finish', () => {
        const labels = { method: req.method, route: routeTemplate(req), status: String(res.statusCode) };
        this.httpRequests.inc(labels);
        this.httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      });
      next();
    };
  }

  /** The Prometheus text exposition: process metrics, then this app's. */
  async exposition(): Promise<string> {
    return `${await register.metrics()}\n${await this.registry.metrics()}`;
  }
}
