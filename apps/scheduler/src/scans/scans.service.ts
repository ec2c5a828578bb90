import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Clock } from '@rxnotify/common/clock/clock';
import { DEFAULT_PHARMACY_SETTINGS } from '@rxnotify/common/pharmacy/pharmacy-settings';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { AdherenceService } from '../adherence/adherence.service';
import { ADHERENCE_SCAN, REFILL_SCAN, REFILL_WINDOW, UNCLAIMED_SCAN } from './scan.sql';

/** Gaps older than this when first seen are history, not news: no outreach for them. */
const ADHERENCE_LOOKBACK_DAYS = 30;
/** One id shared by every scheduler replica: only one scan runs at a time. */
const SCAN_LOCK = 7270062;
const ENQUEUE_BATCH = 250;
/** Parts of the refill statement, by run-out day (see REFILL_SCAN). */
const REFILL_PARTS = 4;

export interface ScanCounts {
  refill_due: number;
  renewal_needed: number;
  unclaimed_pickup: number;
  adherence_gap: number;
}

@Injectable()
export class ScansService {
  private readonly logger = new Logger(ScansService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly queue: NotificationQueue,
    private readonly clock: Clock,
    private readonly adherence: AdherenceService,
  ) {}

  /** Adherence outreach in order of need: the lowest PDC (PQA) first, so patients at risk are reached first. */
  private async atRiskFirst<T extends { patient_id: string }>(gaps: T[]): Promise<T[]> {
    if (gaps.length < 2) return gaps;
    const pdc = await this.adherence.lowestPdc([...new Set(gaps.map((g) => g.patient_id))]);
    return [...gaps].sort((a, b) => (pdc.get(a.patient_id) ?? 1) - (pdc.get(b.patient_id) ?? 1));
  }

  /**
   * Computes the due events one kind at a time, each kind one set-based statement that commits on its own, and
   * enqueues each kind's new notifications while the next statement runs (Postgres and Redis work at once).
   * A session advisory lock keeps scans' statements from running two at once across replicas. A statement that fails
   * leaves the kinds before it done; running the scan again finishes the job without duplicates (dedup keys).
   * If enqueueing fails, the rows stay pending and the dispatcher's reconciler enqueues them.
   */
  async scan(pharmacyId: string | null = null): Promise<ScanCounts> {
    const now = this.clock.now();
    const defaults = DEFAULT_PHARMACY_SETTINGS;
    const counts: ScanCounts = { refill_due: 0, renewal_needed: 0, unclaimed_pickup: 0, adherence_gap: 0 };
    let enqueued = Promise.resolve(true);
    const publish = (rows: { id: string; kind: string }[]) => {
      for (const row of rows) counts[row.kind as keyof ScanCounts] += 1;
      // In order, one batch at a time; after a failure the rest is left to the reconciler.
      enqueued = enqueued.then((ok) => ok && this.enqueue(rows, now));
    };

    const session = this.db.createQueryRunner();
    await session.connect();
    try {
      await session.query('SELECT pg_advisory_lock($1)', [SCAN_LOCK]);
      try {
        // The largest kind, in parts: the first part's reminders are on their way while the others are computed.
        const [window] = (await session.query(REFILL_WINDOW, [now, defaults.adherenceGraceDays])) as {
          firstDay: string;
          days: number;
        }[];
        for (let part = 0; part < REFILL_PARTS; part++)
          publish(
            await session.query(REFILL_SCAN, [
              now,
              pharmacyId,
              defaults.adherenceGraceDays,
              REFILL_PARTS,
              part,
              window.firstDay,
              window.days,
            ]),
          );
        publish(
          await session.query(UNCLAIMED_SCAN, [
            now,
            pharmacyId,
            defaults.pickupReminderDays,
            defaults.returnToStockDay,
          ]),
        );
        const gaps: { id: string; kind: string; patient_id: string }[] = await session.query(ADHERENCE_SCAN, [
          now,
          pharmacyId,
          defaults.adherenceGraceDays,
          ADHERENCE_LOOKBACK_DAYS,
        ]);
        publish(await this.atRiskFirst(gaps));
      } finally {
        await session.query('SELECT pg_advisory_unlock($1)', [SCAN_LOCK]);
      }
    } finally {
      await session.release();
    }
    // After the lock: an enqueue that waits for Redis holds no lock and no connection.
    await enqueued;
    this.logger.log(`scan created ${JSON.stringify(counts)}`);
    return counts;
  }

  /** Enqueues in batches; false (and a warning) when Redis refused, leaving the rest to the reconciler. */
  private async enqueue(rows: { id: string }[], now: Date): Promise<boolean> {
    for (let i = 0; i < rows.length; i += ENQUEUE_BATCH) {
      const batch = rows.slice(i, i + ENQUEUE_BATCH).map((row) => ({ notificationId: row.id }));
      try {
        await this.queue.enqueue(batch, now);
      } catch (error) {
        this.logger.warn(
          `enqueue deferred to the reconciler: ${error instanceof Error ? error.message : 'unknown error'}`,
        );
        return false;
      }
    }
    return true;
  }
}
