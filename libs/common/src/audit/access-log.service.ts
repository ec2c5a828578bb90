import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import type { Principal } from '../auth/api-keys';
import { InvalidInputError } from '../errors';

/** The most records one answer holds; a query matching more is refused rather than cut short. */
export const MAX_ACCESS_RECORDS = 10_000;

export interface AccessEntry {
  patientId: string | null;
  pharmacyId: string | null;
  action: string;
  route: string;
}

export interface AccessRecord {
  keyId: string | null;
  role: string;
  pharmacyId: string | null;
  patientId: string | null;
  action: string;
  route: string;
  at: string;
}

/** The access log: who read or changed which patient's data, and when. Append-only and hash-chained. */
@Injectable()
export class AccessLogService {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async record(
    principal: Principal,
    entries: AccessEntry[],
    manager: EntityManager = this.db.manager,
  ): Promise<void> {
    if (entries.length === 0) return;
    await manager.query(
      `INSERT INTO access_log (key_id, role, pharmacy_id, patient_id, action, route)
       SELECT $1, $2, e.pharmacy_id, e.patient_id, e.action, e.route
       FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[]) AS e(pharmacy_id, patient_id, action, route)`,
      [
        principal.keyId,
        principal.role,
        entries.map((e) => e.pharmacyId),
        entries.map((e) => e.patientId),
        entries.map((e) => e.action),
        entries.map((e) => e.route),
      ],
    );
  }

  async query(
    scope: string | null,
    filter: { patientId?: string; from?: Date; to?: Date },
  ): Promise<AccessRecord[]> {
    const rows = await this.db.query<
      {
        key_id: string | null;
        role: string;
        pharmacy_id: string | null;
        patient_id: string | null;
        action: string;
        route: string;
        at: Date;
      }[]
    >(
      `SELECT key_id, role, pharmacy_id, patient_id, action, route, at FROM access_log
       WHERE ($1::uuid IS NULL OR patient_id = $1) AND ($2::timestamptz IS NULL OR at >= $2)
         AND ($3::timestamptz IS NULL OR at <= $3) AND ($4::uuid IS NULL OR pharmacy_id = $4)
       ORDER BY id LIMIT $5`,
      [filter.patientId ?? null, filter.from ?? null, filter.to ?? null, scope, MAX_ACCESS_RECORDS + 1],
    );
    // An auditor must never take a partial answer for the whole one.
    if (rows.length > MAX_ACCESS_RECORDS) {
      throw new InvalidInputError([
        `more than ${MAX_ACCESS_RECORDS} access records match: narrow from and to (or give patientId), ` +
          'or take them all with `npm run cli -- audit export`',
      ]);
    }
    return rows.map((r) => ({
      keyId: r.key_id,
      role: r.role,
      pharmacyId: r.pharmacy_id,
      patientId: r.patient_id,
      action: r.action,
      route: r.route,
      at: r.at.toISOString(),
    }));
  }
}
