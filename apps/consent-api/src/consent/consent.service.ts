import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { AccessLogService } from '@rxnotify/common/audit/access-log.service';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { ensureNoSendsInFlight } from '@rxnotify/common/consent/in-flight';
import { Metrics } from '@rxnotify/common/metrics/metrics.service';
import { DataSource, type EntityManager } from 'typeorm';
import type { Channel } from '../shared/http';
import { findPatientInScope } from '../shared/patient-scope';
import type {
  ChannelConsentView,
  ConsentChangeView,
  ConsentDetailView,
  ConsentStatus,
  ConsentSummaryView,
  SetConsentDto,
} from './consent.dto';

export interface ConsentChange {
  patientIds: string[];
  channel: Channel;
  status: ConsentStatus;
  source: string;
  actor: string;
}

/**
 * Consent is two records kept in step: `consents`, the current state per patient and channel, which the
 * dispatcher reads at send time, and `consent_events`, the append-only ledger of every change. Both are
 * written in one transaction, the state first (see `set`).
 */
@Injectable()
export class ConsentService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keyRing: KeyRing,
    private readonly accessLog: AccessLogService,
    private readonly metrics: Metrics,
  ) {}

  /** A consent captured by staff or an integration: always recorded, even when the status is unchanged. */
  async set(
    principal: Principal,
    patientId: string,
    channel: Channel,
    input: SetConsentDto,
    route: string,
  ): Promise<ConsentChangeView> {
    const result = await this.db.transaction(async (manager) => {
      const patient = await findPatientInScope(manager, principal, patientId);
      // The current state first, then the ledger: the consents row lock orders concurrent changes of one
      // patient's channel, so the last event and the current state always agree. recordChange takes its
      // locks in the same order (consents, then the ledger's chain head), so the two never deadlock.
      await manager.query(
        `INSERT INTO consents (patient_id, channel, status, source, updated_at) VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (patient_id, channel)
         DO UPDATE SET status = EXCLUDED.status, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at`,
        [patient.id, channel, input.status, input.source],
      );
      // The event's `at` is now() as well: the transaction's time, equal to the state's updated_at.
      const [event] = await manager.query<{ id: string; at: Date }[]>(
        `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor, evidence_mac)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, at`,
        [
          patient.id,
          patient.pharmacyId,
          channel,
          input.status,
          input.source,
          `key:${principal.keyId}`,
          input.evidence ? this.keyRing.evidenceMac(input.evidence) : null,
        ],
      );
      if (input.evidence) {
        await manager.query(`INSERT INTO consent_evidence (consent_event_id, evidence_enc) VALUES ($1, $2)`, [
          event.id,
          this.keyRing.encrypt(input.evidence),
        ]);
      }
      await this.accessLog.record(
        principal,
        [{ patientId: patient.id, pharmacyId: patient.pharmacyId, action: 'consent.update', route }],
        manager,
      );
      return {
        patientId: patient.id,
        view: { channel, status: input.status, source: input.source, updatedAt: event.at.toISOString() },
      };
    });
    this.metrics.consentChanged(input.source, input.status);
    // Answer only once no send that passed the consent check before this opt-out is still in flight.
    // Past the wait, 503: the opt-out stands, and a retry of the request answers once they have settled.
    if (input.status === 'opted_out') await ensureNoSendsInFlight(this.db, [result.patientId], channel);
    return result.view;
  }

  async read(principal: Principal, patientId: string, route: string): Promise<ConsentDetailView> {
    return this.db.transaction(async (manager) => {
      const patient = await findPatientInScope(manager, principal, patientId);
      const current = await this.summary(manager, patient.id);
      const events = await manager.query<
        { channel: Channel; status: ConsentStatus; source: string; at: Date; evidence_enc: string | null }[]
      >(
        `SELECT e.channel, e.status, e.source, e.at, v.evidence_enc
         FROM consent_events e LEFT JOIN consent_evidence v ON v.consent_event_id = e.id
         WHERE e.patient_id = $1 ORDER BY e.id`,
        [patient.id],
      );
      await this.accessLog.record(
        principal,
        [{ patientId: patient.id, pharmacyId: patient.pharmacyId, action: 'consent.read', route }],
        manager,
      );
      return {
        ...current,
        history: events.map((e) => ({
          channel: e.channel,
          status: e.status,
          source: e.source,
          evidence: this.keyRing.decryptOptional(e.evidence_enc),
          at: e.at.toISOString(),
        })),
      };
    });
  }

  /** The current consent of one patient on both channels; `unknown` where nothing was ever recorded. */
  async summary(manager: EntityManager, patientId: string): Promise<ConsentSummaryView> {
    const rows = await manager.query<
      { channel: Channel; status: ConsentStatus; source: string; updated_at: Date }[]
    >(`SELECT channel, status, source, updated_at FROM consents WHERE patient_id = $1`, [patientId]);
    const view = (channel: Channel): ChannelConsentView => {
      const row = rows.find((r) => r.channel === channel);
      return row
        ? { status: row.status, source: row.source, updatedAt: row.updated_at.toISOString() }
        : { status: 'unknown', source: null, updatedAt: null };
    };
    return { sms: view('sms'), voice: view('voice') };
  }

  /**
   * A change the patient made themselves (a keyword, a keypress), for each patient whose status
   * differs: repeating STOP is a no-op, not a new ledger entry. Returns the patients that changed.
   */
  async recordChange(manager: EntityManager, change: ConsentChange): Promise<string[]> {
    if (change.patientIds.length === 0) return [];
    const rows = await manager.query<{ patient_id: string }[]>(
      `WITH changed AS (
         INSERT INTO consents (patient_id, channel, status, source, updated_at)
         SELECT id, $2::text, $3::text, $4::text, now() FROM unnest($1::uuid[]) AS id
         ON CONFLICT (patient_id, channel)
         DO UPDATE SET status = EXCLUDED.status, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at
         WHERE consents.status <> EXCLUDED.status
         RETURNING patient_id
       )
       INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor)
       SELECT c.patient_id, p.pharmacy_id, $2::text, $3::text, $4::text, $5::text
       FROM changed c JOIN patients p ON p.id = c.patient_id
       ORDER BY c.patient_id
       RETURNING patient_id`,
      [change.patientIds, change.channel, change.status, change.source, change.actor],
    );
    for (let i = 0; i < rows.length; i++) this.metrics.consentChanged(change.source, change.status);
    return rows.map((r) => r.patient_id);
  }
}
