import { InjectQueue } from '@nestjs/bullmq';
import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Queue } from 'bullmq';
import { DataSource, type EntityManager } from 'typeorm';
import { Clock } from '@rxnotify/common/clock/clock';
import { JOB_OPTIONS, JobName, QueueName, type JobOf } from '@rxnotify/common/queue/queue.catalog';
import { settlesWithin, shutdownGraceLeft } from '@rxnotify/common/shutdown/grace';
import { DeliveryService } from '../delivery/delivery.service';

const INTERVAL_MS = 30_000;
const BATCH = 500;
/** One reconciler at a time across dispatcher replicas (the others skip the round). */
const RECONCILE_LOCK = 7270064;
const LIVE_STATES = new Set(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);

/**
 * Postgres is the source of truth; Redis is transport. At start and every 30 s, every notification still owed
 * (pending, held, or claimed by a worker whose lease ran out) gets a job if the queue does not hold a live one:
 * after a Redis flush, a lost enqueue or a crashed worker, nothing is lost. Attempts whose answer was lost are
 * settled when the job runs (the delivery service asks the provider before any resend); those of notifications
 * no longer owed, which no job will run for, by each round.
 */
@Injectable()
export class ReconcilerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ReconcilerService.name);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectQueue(QueueName.Delivery) private readonly queue: Queue<JobOf<JobName.SendNotification>>,
    private readonly clock: Clock,
    private readonly delivery: DeliveryService,
  ) {}

  onApplicationBootstrap(): void {
    const tick = () => {
      this.running ??= this.reconcile()
        .catch((error: unknown) => {
          // Postgres or Redis is down: the next round tries again.
          this.logger.warn(`reconcile skipped: ${error instanceof Error ? error.message : 'unknown error'}`);
          return 0;
        })
        .finally(() => (this.running = null));
    };
    tick();
    this.timer = setInterval(tick, INTERVAL_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.running && !(await settlesWithin(this.running, shutdownGraceLeft())))
      this.logger.warn(
        'reconcile round still running at the shutdown deadline: abandoned (the next one redoes it)',
      );
  }

  /**
   * Returns how many jobs it (re)created. The lock is a session lock on one connection, with no transaction
   * open: a round that waits on Redis (down, say) then holds no snapshot or row lock in Postgres.
   */
  async reconcile(): Promise<number> {
    const runner = this.db.createQueryRunner();
    await runner.connect();
    const session = runner.manager;
    try {
      const [{ locked }] = await session.query<{ locked: boolean }[]>(
        `SELECT pg_try_advisory_lock($1) AS locked`,
        [RECONCILE_LOCK],
      );
      if (!locked) return 0;
      try {
        const created = await this.round(session);
        const settled = await this.delivery.settleOrphanIntents();
        if (settled > 0)
          this.logger.log(`settled ${settled} open attempt(s) of notifications no longer owed`);
        return created;
      } finally {
        await session.query(`SELECT pg_advisory_unlock($1)`, [RECONCILE_LOCK]);
      }
    } finally {
      await runner.release();
    }
  }

  private async round(session: EntityManager): Promise<number> {
    const now = this.clock.now();
    let created = 0;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const owed = await session.query<{ id: string; not_before: Date | null }[]>(
        `SELECT id, CASE WHEN state = 'scheduled' THEN scheduled_for WHEN state = 'pending' THEN due_at END AS not_before
         FROM notifications
         WHERE id > $1 AND (state IN ('pending', 'scheduled') OR (state = 'sending' AND lease_expires_at < $2))
         ORDER BY id LIMIT $3`,
        [after, now, BATCH],
      );
      if (owed.length === 0) break;
      after = owed[owed.length - 1].id;
      const missing = await this.withoutLiveJob(owed.map((o) => o.id));
      const add = owed.filter((o) => missing.has(o.id));
      if (add.length > 0) {
        await this.queue.addBulk(
          add.map((o) => ({
            name: JobName.SendNotification,
            data: { notificationId: o.id },
            opts: {
              ...JOB_OPTIONS[JobName.SendNotification],
              jobId: o.id,
              delay: o.not_before ? Math.max(0, o.not_before.getTime() - now.getTime()) : 0,
            },
          })),
        );
        created += add.length;
      }
      if (owed.length < BATCH) break;
    }
    if (created > 0) this.logger.log(`re-enqueued ${created} notification(s) the queue did not hold`);
    return created;
  }

  /** Ids with no waiting, delayed or active job; finished jobs under those ids are removed so the id can be reused. */
  private async withoutLiveJob(ids: string[]): Promise<Set<string>> {
    const missing = new Set<string>();
    const jobs = await Promise.all(ids.map((id) => this.queue.getJob(id)));
    await Promise.all(
      jobs.map(async (job, i) => {
        if (!job) return missing.add(ids[i]);
        const state = await job.getState();
        if (LIVE_STATES.has(state)) return;
        await job.remove().catch(() => undefined);
        missing.add(ids[i]);
      }),
    );
    return missing;
  }
}
