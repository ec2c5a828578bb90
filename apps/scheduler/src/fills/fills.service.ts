import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { AccessLogService } from '@rxnotify/common/audit/access-log.service';
import { canReach, type Principal } from '@rxnotify/common/auth/api-keys';
import { Clock } from '@rxnotify/common/clock/clock';
import { preparedQuery } from '@rxnotify/common/database/prepared';
import { ConflictError, NotFoundError } from '@rxnotify/common/errors';
import { NotificationQueue, type Enqueue } from '@rxnotify/common/queue/notification-queue';
import type { FillOutcome } from './fill.dto';
import { FillBatch, fillKey, type SealedFillBatch, type ValidFill } from './fill-batch';

/** A ready fill older than this is history being imported, not news for the patient. */
const READY_NOTICE_MAX_AGE_HOURS = 24;
/**
 * The staff click in one statement. $1 fill, $2 now, $3 the caller's pharmacy (null: any), $4–$6 the access-log
 * caller. No row: no such fill within reach. `updated` false: the fill is done (picked up, returned, cancelled)
 * and nothing was written. The access log is written with the change. A click always has its notice, however
 * long ago the fill was first ready (imports skip notices for fills ready over a day ago; a click is news).
 */
const MARK_READY = `WITH fill AS (
   SELECT id, pharmacy_id, patient_id, status FROM fills
   WHERE id = $1 AND ($3::uuid IS NULL OR pharmacy_id = $3) FOR UPDATE),
 updated AS (
   -- A fill that is ready has not been picked up: a pick-up time stored before that rule (on a fill in progress)
   -- is dropped rather than left to contradict the status (and the ready time's CHECK).
   UPDATE fills f SET status = 'ready', ready_at = coalesce(f.ready_at, $2), picked_up_at = NULL, updated_at = $2
   FROM fill WHERE f.id = fill.id AND fill.status NOT IN ('picked_up', 'returned_to_stock', 'cancelled')
   RETURNING f.id, f.pharmacy_id, f.patient_id, f.ready_at),
 notice AS (
   INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
   SELECT u.pharmacy_id, u.patient_id, 'ready', ARRAY[u.id], 'ready:' || u.id,
          $2::timestamptz + make_interval(secs => coalesce((ph.settings->>'readyCoalesceSeconds')::int, 60))
   FROM updated u JOIN pharmacies ph ON ph.id = u.pharmacy_id
   ON CONFLICT (dedup_key) DO NOTHING
   RETURNING id, due_at),
 logged AS (
   INSERT INTO access_log (key_id, role, pharmacy_id, patient_id, action, route)
   SELECT $4, $5, u.pharmacy_id, u.patient_id, 'fill.ready', $6 FROM updated u)
 SELECT fill.status, EXISTS (SELECT 1 FROM updated) AS updated,
        (SELECT id FROM notice) AS created_id, (SELECT due_at FROM notice) AS created_due,
        (SELECT id FROM notifications WHERE dedup_key = 'ready:' || $1::text) AS existing_id
 FROM fill`;

/**
 * A fill pushed as ready without `readyAt` became ready when it was pushed ($17, now), not when it was filled: a fill
 * that waited days on insurance is still news. Re-sent without `readyAt`, it keeps the time first recorded, so a
 * re-sent batch changes nothing; a `readyAt` given is taken as it is.
 */
const READY_AT = `CASE WHEN EXCLUDED.status = 'ready' AND EXCLUDED.ready_at = $17::timestamptz
                       THEN coalesce(f.ready_at, EXCLUDED.ready_at) ELSE EXCLUDED.ready_at END`;

/** Stale-making statuses: a reminder about a fill in one of these must not go out. */
const DONE_STATUSES = ['picked_up', 'returned_to_stock', 'cancelled'];

interface StoredFill {
  id: string;
  pharmacy_id: string;
  patient_id: string;
  status: string;
}

export interface UpsertOptions {
  /**
   * Patients whose access-log entry for this request is already committed: a request sent in several batches
   * (the CSV import) logs each patient once, as a single JSON batch does. Filled in after each commit.
   */
  loggedPatients?: Set<string>;
}

/** How long a fill request waits for Redis to take its jobs before leaving them to the reconciler. */
export const ENQUEUE_WAIT_MS = 2_000;

@Injectable()
export class FillsService {
  private readonly logger = new Logger(FillsService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly queue: NotificationQueue,
    private readonly accessLog: AccessLogService,
    private readonly clock: Clock,
  ) {}

  /**
   * Upserts a batch. Each fill is validated alone; the valid ones are written in one transaction together
   * with the ready notifications they imply, and those are enqueued after commit.
   */
  async upsert(
    principal: Principal,
    inputs: unknown[],
    route: string,
    options: UpsertOptions = {},
  ): Promise<FillOutcome[]> {
    const now = this.clock.now();
    const batch = new FillBatch(principal, () => now);
    for (const input of inputs) batch.add(input);
    return this.write(principal, batch.seal(), route, options, now);
  }

  /**
   * Writes a sealed batch (see FillBatch) in one transaction, with the ready notifications it implies, and
   * enqueues those after commit. Returns one outcome per input, in input order.
   */
  async write(
    principal: Principal,
    batch: SealedFillBatch,
    route: string,
    options: UpsertOptions = {},
    now: Date = this.clock.now(),
  ): Promise<FillOutcome[]> {
    const { results, rows: toWrite } = batch;
    if (toWrite.length === 0) return results;
    const { notices: enqueue, logged } = await this.db.transaction(async (tx) => {
      const patients = await this.resolvePatients(tx, toWrite);
      const patientIds = toWrite.map((row) => patients.get(fillKey(row.pharmacyId, row.patientExternalId)));
      const rows = toWrite.filter(({ index, externalId }, k) => {
        if (patientIds[k] !== undefined) return true;
        results[index] = {
          externalId,
          outcome: 'rejected',
          errors: ['patientExternalId does not name a known patient of this pharmacy'],
        };
        return false;
      });
      if (rows.length === 0) return { notices: [], logged: [] };

      const stored = await this.writeFills(tx, batch, patientIds, rows, now);
      for (const { index, externalId, key } of rows) {
        const row = stored.get(key);
        if (row)
          results[index] = {
            externalId,
            id: row.id,
            outcome: row.created ? 'created' : 'updated',
          };
      }
      const changed = [...stored.values()].filter((row) => row.changed);
      // A fill created by this batch has no notices yet: only updated ones can make any stale.
      await this.cancelStale(
        tx,
        changed.filter((row) => !row.created && DONE_STATUSES.includes(row.status)).map((row) => row.id),
        now,
      );
      await this.cancelSuperseded(
        tx,
        changed
          .filter((row) => !['returned_to_stock', 'cancelled'].includes(row.status))
          .map((row) => row.id),
        now,
      );
      const notices = await this.createReadyNotices(
        tx,
        changed.filter((row) => row.status === 'ready').map((row) => row.id),
        now,
      );
      const touched = new Map(
        changed
          .filter((row) => !options.loggedPatients?.has(row.patient_id))
          .map((row) => [row.patient_id, row.pharmacy_id]),
      );
      await this.accessLog.record(
        principal,
        [...touched].map(([patientId, pharmacyId]) => ({
          patientId,
          pharmacyId,
          action: 'fill.upsert',
          route,
        })),
        tx,
      );
      return { notices, logged: [...touched.keys()] };
    });
    for (const patientId of logged) options.loggedPatients?.add(patientId);
    await this.enqueueAfterCommit(enqueue);
    return results;
  }

  /**
   * Staff marks a fill ready: idempotent, the same fill always gives the same notification. One statement
   * (MARK_READY: lock, update, notice, access log), so a click costs one round trip and one commit.
   */
  async markReady(principal: Principal, fillId: string, route: string): Promise<{ notificationId: string }> {
    const now = this.clock.now();
    const [row] = await preparedQuery<{
      status: string;
      updated: boolean;
      created_id: string | null;
      created_due: Date | null;
      existing_id: string | null;
    }>(this.db, 'scheduler.mark-ready', MARK_READY, [
      fillId,
      now,
      principal.pharmacyId,
      principal.keyId,
      principal.role,
      route,
    ]);
    if (!row) throw new NotFoundError('fill');
    if (!row.updated) {
      throw new ConflictError(`fill is ${row.status.replace(/_/g, ' ')}; it cannot be marked ready`);
    }
    if (row.created_id) {
      await this.enqueueAfterCommit([{ notificationId: row.created_id, notBefore: row.created_due ?? now }]);
      return { notificationId: row.created_id };
    }
    // Already noticed: by an earlier click, or by one that committed while this statement waited for the fill.
    const notificationId =
      row.existing_id ??
      (
        await this.db.query<{ id: string }[]>(`SELECT id FROM notifications WHERE dedup_key = $1`, [
          `ready:${fillId}`,
        ])
      )[0]?.id;
    if (!notificationId) throw new ConflictError('fill changed while being marked ready; try again');
    return { notificationId };
  }

  /** The patient took the fill home: pending ready and pickup reminders for it are cancelled. */
  async markPickedUp(
    principal: Principal,
    fillId: string,
    route: string,
  ): Promise<{ id: string; status: string; pickedUpAt: string; cancelledNotifications: number }> {
    const now = this.clock.now();
    return this.db.transaction(async (tx) => {
      const fill = await this.lockFill(tx, principal, fillId);
      if (fill.status === 'returned_to_stock' || fill.status === 'cancelled') {
        throw new ConflictError(`fill is ${fill.status.replace(/_/g, ' ')}; it cannot be picked up`);
      }
      const [row] = await tx.query<{ picked_up_at: Date }[]>(
        `WITH updated AS (
           UPDATE fills SET status = 'picked_up', picked_up_at = coalesce(picked_up_at, greatest($2::timestamptz, ready_at)), updated_at = $2
           WHERE id = $1 RETURNING picked_up_at)
         SELECT * FROM updated`,
        [fillId, now],
      );
      const cancelled = await this.cancelStale(tx, [fillId], now);
      await this.accessLog.record(
        principal,
        [{ patientId: fill.patient_id, pharmacyId: fill.pharmacy_id, action: 'fill.pickup', route }],
        tx,
      );
      return {
        id: fillId,
        status: 'picked_up',
        pickedUpAt: row.picked_up_at.toISOString(),
        cancelledNotifications: cancelled,
      };
    });
  }

  private async lockFill(tx: EntityManager, principal: Principal, fillId: string): Promise<StoredFill> {
    const [fill] = await tx.query<StoredFill[]>(
      `SELECT id, pharmacy_id, patient_id, status FROM fills WHERE id = $1 FOR UPDATE`,
      [fillId],
    );
    if (!fill || !canReach(principal, fill.pharmacy_id)) throw new NotFoundError('fill');
    return fill;
  }

  private async resolvePatients(
    tx: EntityManager,
    fills: { pharmacyId: string; patientExternalId: string }[],
  ): Promise<Map<string, string>> {
    if (fills.length === 0) return new Map();
    const keys = distinctKeys(fills, (f) => f.patientExternalId);
    // One index probe per key (LIMIT 1 keeps the planner from flattening the LATERAL into a join that hashes the
    // whole table, which it prefers for large batches and which grows with the table). The key is unique.
    const rows = await tx.query<{ id: string; pharmacy_id: string; external_id: string }[]>(
      `SELECT p.id, p.pharmacy_id, p.external_id
       FROM unnest($1::uuid[], $2::text[]) AS k(pharmacy_id, external_id)
       CROSS JOIN LATERAL (SELECT id, pharmacy_id, external_id FROM patients
                           WHERE pharmacy_id = k.pharmacy_id AND external_id = k.external_id LIMIT 1) p`,
      [keys.pharmacyIds, keys.externalIds],
    );
    return new Map(rows.map((r) => [fillKey(r.pharmacy_id, r.external_id), r.id]));
  }

  /**
   * One statement for the whole batch; a re-sent, unchanged fill is left untouched. The batch's columns were laid
   * out before the transaction; a fill whose patient is unknown has no patient id and is skipped. `rows` are
   * the batch's fills with a known patient.
   */
  private async writeFills(
    tx: EntityManager,
    batch: SealedFillBatch,
    patientIds: (string | undefined)[],
    rows: ValidFill[],
    now: Date,
  ) {
    const c = batch.columns;
    const written = await tx.query<
      {
        id: string;
        pharmacy_id: string;
        patient_id: string;
        external_id: string;
        status: string;
        created: boolean;
      }[]
    >(
      `INSERT INTO fills AS f (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, ndc, quantity,
                               days_supply, refills_remaining, filled_at, status, ready_at, picked_up_at, maintenance,
                               therapeutic_class)
       SELECT pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, ndc, quantity, days_supply,
              refills_remaining, filled_at, status,
              coalesce(ready_at, CASE WHEN status = 'ready' THEN $17::timestamptz END),
              picked_up_at, maintenance, therapeutic_class
       FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
                   $8::numeric[], $9::int[], $10::int[], $11::timestamptz[], $12::text[], $13::timestamptz[],
                   $14::timestamptz[], $15::boolean[], $16::text[])
         AS u(pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, ndc, quantity, days_supply,
              refills_remaining, filled_at, status, ready_at, picked_up_at, maintenance, therapeutic_class)
       WHERE patient_id IS NOT NULL
       ON CONFLICT (pharmacy_id, external_id) DO UPDATE SET
         patient_id = EXCLUDED.patient_id, rx_number = EXCLUDED.rx_number, fill_number = EXCLUDED.fill_number,
         drug_name = EXCLUDED.drug_name, ndc = EXCLUDED.ndc, quantity = EXCLUDED.quantity,
         days_supply = EXCLUDED.days_supply, refills_remaining = EXCLUDED.refills_remaining,
         filled_at = EXCLUDED.filled_at, status = EXCLUDED.status, ready_at = ${READY_AT},
         picked_up_at = EXCLUDED.picked_up_at, maintenance = EXCLUDED.maintenance,
         therapeutic_class = EXCLUDED.therapeutic_class, updated_at = now()
       WHERE (f.patient_id, f.rx_number, f.fill_number, f.drug_name, f.ndc, f.quantity, f.days_supply,
              f.refills_remaining, f.filled_at, f.status, f.ready_at, f.picked_up_at, f.maintenance, f.therapeutic_class)
         IS DISTINCT FROM
             (EXCLUDED.patient_id, EXCLUDED.rx_number, EXCLUDED.fill_number, EXCLUDED.drug_name, EXCLUDED.ndc,
              EXCLUDED.quantity, EXCLUDED.days_supply, EXCLUDED.refills_remaining, EXCLUDED.filled_at, EXCLUDED.status,
              ${READY_AT}, EXCLUDED.picked_up_at, EXCLUDED.maintenance, EXCLUDED.therapeutic_class)
       RETURNING f.id, f.pharmacy_id, f.patient_id, f.external_id, f.status, (xmax = 0) AS created`,
      [
        c.pharmacyId,
        patientIds,
        c.externalId,
        c.rxNumber,
        c.fillNumber,
        c.drugName,
        c.ndc,
        c.quantity,
        c.daysSupply,
        c.refillsRemaining,
        c.filledAt,
        c.status,
        c.readyAt,
        c.pickedUpAt,
        c.maintenance,
        c.therapeuticClass,
        now,
      ],
    );
    const result = new Map<
      string,
      {
        id: string;
        pharmacy_id: string;
        patient_id: string;
        status: string;
        created: boolean;
        changed: boolean;
      }
    >();
    for (const row of written)
      result.set(fillKey(row.pharmacy_id, row.external_id), { ...row, changed: true });
    const unchanged = rows.filter(({ key }) => !result.has(key));
    if (unchanged.length > 0) {
      // One index probe per key, as in resolvePatients.
      const existing = await tx.query<
        { id: string; pharmacy_id: string; patient_id: string; external_id: string; status: string }[]
      >(
        `SELECT f.id, f.pharmacy_id, f.patient_id, f.external_id, f.status
         FROM unnest($1::uuid[], $2::text[]) AS k(pharmacy_id, external_id)
         CROSS JOIN LATERAL (SELECT id, pharmacy_id, patient_id, external_id, status FROM fills
                             WHERE pharmacy_id = k.pharmacy_id AND external_id = k.external_id LIMIT 1) f`,
        [unchanged.map((f) => f.pharmacyId), unchanged.map((f) => f.externalId)],
      );
      for (const row of existing)
        result.set(fillKey(row.pharmacy_id, row.external_id), { ...row, created: false, changed: false });
    }
    return result;
  }

  /**
   * A ready notice per newly ready fill, held for the pharmacy's coalescing window so that a family's
   * several fills can go out as one text. The dedup key makes this idempotent.
   */
  private async createReadyNotices(
    tx: EntityManager,
    fillIds: string[],
    now: Date,
  ): Promise<(Enqueue & { notificationId: string })[]> {
    if (fillIds.length === 0) return [];
    const rows = await tx.query<{ id: string; due_at: Date }[]>(
      `INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
       SELECT f.pharmacy_id, f.patient_id, 'ready', ARRAY[f.id], 'ready:' || f.id,
              $2::timestamptz + make_interval(secs => coalesce((ph.settings->>'readyCoalesceSeconds')::int, 60))
       FROM fills f JOIN pharmacies ph ON ph.id = f.pharmacy_id
       WHERE f.id = ANY($1::uuid[]) AND f.status = 'ready'
         AND coalesce(f.ready_at, $2) > $2::timestamptz - make_interval(hours => $3)
       ON CONFLICT (dedup_key) DO NOTHING
       RETURNING id, due_at`,
      [fillIds, now, READY_NOTICE_MAX_AGE_HOURS],
    );
    return rows.map((r) => ({ notificationId: r.id, notBefore: r.due_at }));
  }

  /**
   * Notices a status change makes stale: a pickup ends ready and pickup reminders (refill reminders are
   * about that very pickup); a return to stock or a cancellation ends every reminder about the fill.
   */
  /**
   * A new fill of the same prescription (a higher fill number), or of the same therapy filled later, means the
   * patient refilled: pending refill, renewal and adherence reminders about the earlier fills are cancelled.
   */
  private async cancelSuperseded(tx: EntityManager, fillIds: string[], now: Date): Promise<number> {
    if (fillIds.length === 0) return 0;
    // Driven from the few open reminders of these patients (a partial index), never from the fills table.
    const rows = await tx.query<{ id: string }[]>(
      `WITH open AS MATERIALIZED (
         SELECT n.id, n.fill_ids FROM notifications n
         WHERE n.state IN ('pending', 'scheduled') AND n.kind IN ('refill_due', 'renewal_needed', 'adherence_gap')
           AND n.patient_id IN (SELECT patient_id FROM fills WHERE id = ANY($1::uuid[]))),
       stale AS (
         SELECT DISTINCT o.id FROM open o
         JOIN fills earlier ON earlier.id = ANY(o.fill_ids)
         JOIN fills later ON later.id = ANY($1::uuid[]) AND later.patient_id = earlier.patient_id AND later.id <> earlier.id
         WHERE (earlier.rx_number = later.rx_number AND earlier.fill_number < later.fill_number)
            OR (coalesce(earlier.therapeutic_class, earlier.drug_name) = coalesce(later.therapeutic_class, later.drug_name)
                AND earlier.filled_at < later.filled_at)),
       cancelled AS (
         UPDATE notifications n SET state = 'cancelled', reason = 'stale:refilled', updated_at = $2
         FROM stale WHERE n.id = stale.id RETURNING n.id)
       SELECT id FROM cancelled`,
      [fillIds, now],
    );
    return rows.length;
  }

  private async cancelStale(tx: EntityManager, fillIds: string[], now: Date): Promise<number> {
    if (fillIds.length === 0) return 0;
    // The GIN index on fill_ids finds the notices first; a plan that scans fills per notice is never an option.
    const rows = await tx.query<{ id: string }[]>(
      `WITH candidates AS MATERIALIZED (
         SELECT id, kind, fill_ids FROM notifications
         WHERE fill_ids && $1::uuid[] AND state IN ('pending', 'scheduled')),
       stale AS (
         SELECT DISTINCT ON (c.id) c.id, f.status FROM candidates c
         JOIN fills f ON f.id = ANY(c.fill_ids) AND f.id = ANY($1::uuid[])
         WHERE c.kind IN ('ready', 'unclaimed_pickup') OR (f.status <> 'picked_up' AND c.kind IN ('refill_due', 'renewal_needed'))
         ORDER BY c.id, f.status),
       cancelled AS (
         UPDATE notifications n SET state = 'cancelled', reason = 'stale:' || stale.status, updated_at = $2
         FROM stale WHERE n.id = stale.id RETURNING n.id)
       SELECT id FROM cancelled`,
      [fillIds, now],
    );
    return rows.length;
  }

  /**
   * The notifications are committed as pending: if Redis fails or does not answer within ENQUEUE_WAIT_MS, the
   * request goes on without it and the dispatcher's reconciler enqueues them once Redis is back. (With Redis
   * away its client holds the command until it returns; the job id makes that late enqueue a no-op if the
   * reconciler came first.)
   */
  private async enqueueAfterCommit(items: Enqueue[]): Promise<void> {
    const enqueued = this.queue.enqueue(items, this.clock.now()).then(
      () => null,
      (error: unknown) => (error instanceof Error ? error.message : 'unknown error'),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`Redis did not answer within ${ENQUEUE_WAIT_MS} ms`), ENQUEUE_WAIT_MS);
    });
    const problem = await Promise.race([enqueued, timeout]).finally(() => clearTimeout(timer));
    if (problem !== null)
      this.logger.warn(`enqueue of ${items.length} notification(s) deferred to the reconciler: ${problem}`);
  }
}

/** Each (pharmacyId, key) pair once, as parallel arrays for unnest. */
function distinctKeys<T extends { pharmacyId: string }>(
  fills: T[],
  key: (fill: T) => string,
): { pharmacyIds: string[]; externalIds: string[] } {
  const seen = new Set<string>();
  const pharmacyIds: string[] = [];
  const externalIds: string[] = [];
  for (const fill of fills) {
    const id = fillKey(fill.pharmacyId, key(fill));
    if (seen.has(id)) continue;
    seen.add(id);
    pharmacyIds.push(fill.pharmacyId);
    externalIds.push(key(fill));
  }
  return { pharmacyIds, externalIds };
}
