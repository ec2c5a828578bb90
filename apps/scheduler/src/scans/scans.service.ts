import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Clock } from '@rxnotify/common/clock/clock';
import { DEFAULT_PHARMACY_SETTINGS } from '@rxnotify/common/pharmacy/pharmacy-settings';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { AdherenceService } from '../adherence/adherence.service';
import { ADHERENCE_SCAN, REFILL_SCAN, UNCLAIMED_SCAN } from './scan.sql';

/** Gaps older than this when first seen are history, not news: no outreach for them. */
const ADHERENCE_LOOKBACK_DAYS = 30;
/** One id shared by every scheduler replica: only one scan runs at a time. */
const SCAN_LOCK = 7270062;
const ENQUEUE_BATCH = 1000;

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
   * Computes every due event in one transaction (all or nothing), then enqueues the new notifications.
   * If enqueueing fails, the rows stay pending and the dispatcher's reconciler enqueues them.
   */
  async scan(pharmacyId: string | null = null): Promise<ScanCounts> {
    const now = this.clock.now();
    const defaults = DEFAULT_PHARMACY_SETTINGS;
    const created = await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [SCAN_LOCK]);
      const refills = await tx.query<{ id: string; kind: string }[]>(REFILL_SCAN, [
        now,
        pharmacyId,
        defaults.adherenceGraceDays,
      ]);
      const unclaimed = await tx.query<{ id: string; kind: string }[]>(UNCLAIMED_SCAN, [
        now,
        pharmacyId,
        defaults.pickupReminderDays,
        defaults.returnToStockDay,
      ]);
      const gaps = await tx.query<{ id: string; kind: string; patient_id: string }[]>(ADHERENCE_SCAN, [
        now,
        pharmacyId,
        defaults.adherenceGraceDays,
        ADHERENCE_LOOKBACK_DAYS,
      ]);
      return [...refills, ...unclaimed, ...(await this.atRiskFirst(gaps))];
    });

    for (let i = 0; i < created.length; i += ENQUEUE_BATCH) {
      const batch = created.slice(i, i + ENQUEUE_BATCH).map((row) => ({ notificationId: row.id }));
      try {
        await this.queue.enqueue(batch, now);
      } catch (error) {
        this.logger.warn(
          `enqueue deferred to the reconciler: ${error instanceof Error ? error.message : 'unknown error'}`,
        );
        break;
      }
    }
    const counts: ScanCounts = { refill_due: 0, renewal_needed: 0, unclaimed_pickup: 0, adherence_gap: 0 };
    for (const row of created) counts[row.kind as keyof ScanCounts] += 1;
    this.logger.log(`scan created ${JSON.stringify(counts)}`);
    return counts;
  }
}
