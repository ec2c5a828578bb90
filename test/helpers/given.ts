import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { createApiKey, type Role } from '../../libs/common/src/auth/api-keys';
import { KeyRing } from '../../libs/common/src/crypto/key-ring';

export interface PharmacyFixture {
  id: string;
  name: string;
  smsFrom: string;
  callbackPhone: string;
}
export interface PatientFixture {
  id: string;
  pharmacyId: string;
  externalId: string;
  phone: string;
  firstName: string;
}

let counter = 0;
const unique = () => `${Date.now().toString(36)}${(counter++).toString(36)}${randomBytes(2).toString('hex')}`;

/** Test data in the domain's words. Writes go through the same encryption the apps use. */
export function given(db: DataSource, keys: KeyRing) {
  return {
    async pharmacy(
      overrides: Partial<{ name: string; timezone: string; smsFrom: string; settings: object }> = {},
    ): Promise<PharmacyFixture> {
      const name = overrides.name ?? 'Main Street Pharmacy';
      const smsFrom = overrides.smsFrom ?? '+14155550100';
      const [row] = await db.query<{ id: string }[]>(
        `INSERT INTO pharmacies (name, timezone, sms_from, callback_phone, settings) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
        [name, overrides.timezone ?? 'America/New_York', smsFrom, '+14155550199', overrides.settings ?? {}],
      );
      return { id: row.id, name, smsFrom, callbackPhone: '+14155550199' };
    },

    async patient(
      pharmacy: PharmacyFixture,
      options: Partial<{
        externalId: string;
        phone: string;
        firstName: string;
        language: 'en' | 'es';
        consent: Array<'sms' | 'voice'>;
        timezone: string;
      }> = {},
    ): Promise<PatientFixture> {
      const phone = options.phone ?? '+14155552671';
      const firstName = options.firstName ?? 'Ada';
      const externalId = options.externalId ?? `P-${unique()}`;
      const [row] = await db.query<{ id: string }[]>(
        `INSERT INTO patients (pharmacy_id, external_id, first_name_enc, phone_enc, phone_index, language, timezone)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
        [
          pharmacy.id,
          externalId,
          keys.encrypt(firstName),
          keys.encrypt(phone),
          keys.blindIndex(phone),
          options.language ?? 'en',
          options.timezone ?? null,
        ],
      );
      for (const channel of options.consent ?? []) {
        await db.query(
          `INSERT INTO consents (patient_id, channel, status, source) VALUES ($1, $2, 'opted_in', 'test')`,
          [row.id, channel],
        );
        await db.query(
          `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor) VALUES ($1, $2, $3, 'opted_in', 'test', 'test')`,
          [row.id, pharmacy.id, channel],
        );
      }
      return { id: row.id, pharmacyId: pharmacy.id, externalId, phone, firstName };
    },

    /**
     * A fill in the domain's terms, relative to `now` (the test clock):
     * `given.fill(patient, { daysSupply: 30, pickedUpDaysAgo: 26 })`.
     */
    async fill(
      patient: PatientFixture,
      options: Partial<{
        now: Date;
        rxNumber: string;
        fillNumber: number;
        drugName: string;
        therapeuticClass: string;
        daysSupply: number;
        refillsRemaining: number;
        maintenance: boolean;
        pickedUpDaysAgo: number;
        readyDaysAgo: number;
        pickedUpAt: Date;
        status: string;
      }> = {},
    ): Promise<{ id: string }> {
      const now = options.now ?? new Date();
      const daysAgo = (days: number) => new Date(now.getTime() - days * 86400_000);
      const pickedUpAt =
        options.pickedUpAt ??
        (options.pickedUpDaysAgo !== undefined ? daysAgo(options.pickedUpDaysAgo) : null);
      const readyAt = options.readyDaysAgo !== undefined ? daysAgo(options.readyDaysAgo) : pickedUpAt;
      const status = options.status ?? (pickedUpAt ? 'picked_up' : readyAt ? 'ready' : 'in_progress');
      const filledAt = readyAt ?? pickedUpAt ?? now;
      const [row] = await db.query<{ id: string }[]>(
        `INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                            refills_remaining, filled_at, status, ready_at, picked_up_at, maintenance, therapeutic_class)
         VALUES ($1, $2, $3, $4, $5, $6, 30, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
        [
          patient.pharmacyId,
          patient.id,
          `F-${unique()}`,
          options.rxNumber ?? `RX-${unique()}`,
          options.fillNumber ?? 0,
          options.drugName ?? 'Lisinopril 10 mg',
          options.daysSupply ?? 30,
          options.refillsRemaining ?? 3,
          filledAt,
          status,
          readyAt,
          pickedUpAt,
          options.maintenance ?? false,
          options.therapeuticClass ?? null,
        ],
      );
      return row;
    },

    /** A fill and the notification about it, as the scheduler would have written them. */
    async notice(
      patient: PatientFixture,
      options: Partial<{
        kind: string;
        fillStatus: string;
        step: number;
        readyAt: Date;
        rxNumber: string;
        dueAt: Date;
        /** Default Atorvastatin 20 mg; a different drug is a different therapy (not a refill of it). */
        drugName: string;
      }> = {},
    ): Promise<{ notificationId: string; fillId: string }> {
      const [fill] = await db.query<{ id: string }[]>(
        `INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                            refills_remaining, filled_at, status, ready_at)
         VALUES ($1, $2, $3, $5, 0, $7, 30, 30, 2, now() - interval '40 days', $4, coalesce($6, now()))
         RETURNING id`,
        [
          patient.pharmacyId,
          patient.id,
          `F-${unique()}`,
          options.fillStatus ?? 'ready',
          options.rxNumber ?? `RX-${unique()}`,
          options.readyAt ?? null,
          options.drugName ?? 'Atorvastatin 20 mg',
        ],
      );
      const [notification] = await db.query<{ id: string }[]>(
        `INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, step, due_at)
         VALUES ($1, $2, $3, ARRAY[$4::uuid], $5, $6, coalesce($7, now())) RETURNING id`,
        [
          patient.pharmacyId,
          patient.id,
          options.kind ?? 'ready',
          fill.id,
          `test:${unique()}`,
          options.step ?? null,
          options.dueAt ?? null,
        ],
      );
      return { notificationId: notification.id, fillId: fill.id };
    },

    /** A text written at `intent` for one of the patient's notifications: a send whose answer was never recorded. */
    async intentMessage(
      patient: PatientFixture,
      notificationId: string,
      options: Partial<{ from: string; body: string; createdAt: Date }> = {},
    ): Promise<string> {
      const [row] = await db.query<{ id: string }[]>(
        `INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc, status, created_at)
         VALUES ($1, ARRAY[$1::uuid], $2, $3, 'sms', $4, $5, $6, 'intent', coalesce($7, now())) RETURNING id`,
        [
          notificationId,
          patient.pharmacyId,
          patient.id,
          keys.encrypt(patient.phone),
          options.from ?? '+14155550100',
          keys.encrypt(options.body ?? 'text'),
          options.createdAt ?? null,
        ],
      );
      return row.id;
    },

    async apiKey(role: Role, pharmacy: PharmacyFixture | null = null): Promise<string> {
      const { key } = await createApiKey(db, {
        role,
        pharmacyId: pharmacy?.id ?? null,
        label: `test ${role}`,
      });
      return key;
    },
  };
}
