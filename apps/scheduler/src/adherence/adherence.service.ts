import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AccessLogService } from '@rxnotify/common/audit/access-log.service';
import { canReach, type Principal } from '@rxnotify/common/auth/api-keys';
import { Clock } from '@rxnotify/common/clock/clock';
import { NotFoundError } from '@rxnotify/common/errors';
import type { AdherenceView } from './adherence.dto';
import { localDate } from './local-date';
import { computePdc, fromDayNumber, PDC_WINDOW_DAYS, toDayNumber, type PdcFill } from './pdc';

/** Patients whose fills one PDC query loads. */
const PDC_BATCH = 1000;

@Injectable()
export class AdherenceService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly accessLog: AccessLogService,
    private readonly clock: Clock,
  ) {}

  /** PDC per maintenance therapy over the 365 days ending today, today being the patient's local date. */
  async forPatient(principal: Principal, patientId: string, route: string): Promise<AdherenceView> {
    return this.db.transaction(async (tx) => {
      const [patient] = await tx.query<{ pharmacy_id: string; timezone: string }[]>(
        `SELECT p.pharmacy_id, coalesce(p.timezone, ph.timezone) AS timezone
         FROM patients p JOIN pharmacies ph ON ph.id = p.pharmacy_id WHERE p.id = $1`,
        [patientId],
      );
      if (!patient || !canReach(principal, patient.pharmacy_id)) throw new NotFoundError('patient');
      await this.accessLog.record(
        principal,
        [{ patientId, pharmacyId: patient.pharmacy_id, action: 'adherence.read', route }],
        tx,
      );

      const today = localDate(this.clock.now(), patient.timezone);
      const windowStart = fromDayNumber(toDayNumber(today) - (PDC_WINDOW_DAYS - 1));
      // Only what the patient took home counts, dated by the local day they took it (pickup, else fill).
      const fills = await tx.query<PdcFill[]>(
        `SELECT coalesce(f.therapeutic_class, f.drug_name) AS therapy, f.drug_name AS drug, f.days_supply AS "daysSupply",
                to_char(coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE $3, 'YYYY-MM-DD') AS "serviceDate"
         FROM fills f
         WHERE f.patient_id = $1 AND f.pharmacy_id = $2 AND f.maintenance AND f.status = 'picked_up'
           AND (coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE $3)::date BETWEEN $4::date AND $5::date`,
        [patientId, patient.pharmacy_id, patient.timezone, windowStart, today],
      );
      const therapies = computePdc(fills, today).map((t) => ({
        therapy: t.therapy,
        pdc: t.pdc,
        daysLate: t.daysLate,
        atRisk: t.atRisk,
        daysCovered: t.daysCovered,
        daysInPeriod: t.daysInPeriod,
        firstFillDate: t.firstFillDate,
        lastRunOutDate: t.lastRunOutDate,
      }));
      return { patientId, asOf: today, therapies };
    });
  }

  /**
   * The lowest PDC among each patient's maintenance therapies (1 when none): how the scan puts adherence
   * outreach to patients at risk first. One query per 1,000 patients, so a scan's memory does not grow with
   * the number of patients it reaches.
   */
  async lowestPdc(patientIds: string[]): Promise<Map<string, number>> {
    const lowest = new Map<string, number>();
    for (let i = 0; i < patientIds.length; i += PDC_BATCH) {
      for (const [id, pdc] of await this.lowestPdcOf(patientIds.slice(i, i + PDC_BATCH))) lowest.set(id, pdc);
    }
    return lowest;
  }

  private async lowestPdcOf(patientIds: string[]): Promise<Map<string, number>> {
    const rows = await this.db.query<(PdcFill & { patientId: string; today: string })[]>(
      `SELECT f.patient_id AS "patientId", coalesce(f.therapeutic_class, f.drug_name) AS therapy, f.drug_name AS drug,
              f.days_supply AS "daysSupply",
              to_char(coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE z.tz, 'YYYY-MM-DD') AS "serviceDate",
              to_char($2::timestamptz AT TIME ZONE z.tz, 'YYYY-MM-DD') AS today
       FROM fills f JOIN patients p ON p.id = f.patient_id JOIN pharmacies ph ON ph.id = f.pharmacy_id
       CROSS JOIN LATERAL (SELECT coalesce(p.timezone, ph.timezone) AS tz) z
       WHERE f.patient_id = ANY($1::uuid[]) AND f.maintenance AND f.status = 'picked_up'
         AND coalesce(f.picked_up_at, f.filled_at) > $2::timestamptz - make_interval(days => $3)`,
      [patientIds, this.clock.now(), PDC_WINDOW_DAYS + 1],
    );
    const byPatient = new Map<string, (PdcFill & { today: string })[]>();
    for (const row of rows) {
      const fills = byPatient.get(row.patientId);
      if (fills) fills.push(row);
      else byPatient.set(row.patientId, [row]);
    }
    const lowest = new Map<string, number>(patientIds.map((id) => [id, 1]));
    for (const [patientId, fills] of byPatient) {
      const therapies = computePdc(fills, fills[0].today);
      if (therapies.length) lowest.set(patientId, Math.min(...therapies.map((t) => t.pdc)));
    }
    return lowest;
  }
}
