import type { EntityManager } from 'typeorm';
import type { KeyRing } from '../crypto/key-ring';
import type { Language } from '../messaging';

/**
 * One patient as its pharmacy system describes it, keyed by (pharmacyId, externalId). The caller validates
 * and normalizes: `phone` is E.164, `timezone` a canonical IANA name.
 */
export interface PatientUpsert {
  pharmacyId: string;
  externalId: string;
  firstName: string;
  /** Left out (undefined): the stored value stays; null clears it. */
  lastName?: string | null;
  phone: string;
  /** Left out or null: the stored value stays ('en' for a new patient). */
  language?: Language | null;
  /** Left out (undefined): the stored value stays; null clears it. */
  timezone?: string | null;
  /**
   * The patient's opt-in to texts and calls naming the drug. Left out or null: the stored value stays
   * (false for a new patient).
   */
  detailedMessages?: boolean | null;
}

export interface StoredPatient {
  id: string;
  pharmacyId: string;
  externalId: string;
  firstName: string;
  lastName: string | null;
  phone: string;
  language: Language;
  timezone: string | null;
  detailedMessages: boolean;
}

export interface PatientUpsertResult {
  created: boolean;
  /** False when the stored patient already said all of this: nothing was written. */
  changed: boolean;
  patient: StoredPatient;
}

interface PatientRow {
  id: string;
  pharmacy_id: string;
  external_id: string;
  first_name_enc: string;
  last_name_enc: string | null;
  phone_enc: string;
  language: Language;
  timezone: string | null;
  detailed_messages: boolean;
}

const COLUMNS =
  'id, pharmacy_id, external_id, first_name_enc, last_name_enc, phone_enc, language, timezone, detailed_messages';

/**
 * Upserts a patient inside the caller's transaction. Names and phone are stored only as key-ring ciphertext,
 * the phone also as its blind index. Consent is not touched. Because ciphertext cannot be compared in SQL, the
 * stored row is locked and compared in the clear first, so that a pharmacy system re-sending the same patient
 * (a nightly sync, a re-sent FHIR bundle) writes nothing.
 */
export async function upsertPatient(
  manager: EntityManager,
  keyRing: KeyRing,
  input: PatientUpsert,
): Promise<PatientUpsertResult> {
  const [current] = await manager.query<PatientRow[]>(
    `SELECT ${COLUMNS} FROM patients WHERE pharmacy_id = $1 AND external_id = $2 FOR UPDATE`,
    [input.pharmacyId, input.externalId],
  );
  let phoneChanged = false;
  if (current) {
    const stored = decryptPatient(keyRing, current);
    if (!wouldChange(stored, input)) return { created: false, changed: false, patient: stored };
    phoneChanged = stored.phone !== input.phone;
  }
  // ON CONFLICT still matters: a concurrent first upsert of the same patient may commit between the two statements.
  const [row] = await manager.query<(PatientRow & { created: boolean })[]>(
    `INSERT INTO patients (pharmacy_id, external_id, first_name_enc, last_name_enc, phone_enc, phone_index, language, timezone,
       detailed_messages)
     VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::text, 'en'), $8, coalesce($11::boolean, false))
     ON CONFLICT (pharmacy_id, external_id) DO UPDATE SET
       first_name_enc = EXCLUDED.first_name_enc,
       last_name_enc = CASE WHEN $9 THEN EXCLUDED.last_name_enc ELSE patients.last_name_enc END,
       phone_enc = EXCLUDED.phone_enc,
       phone_index = EXCLUDED.phone_index,
       language = CASE WHEN $7::text IS NULL THEN patients.language ELSE EXCLUDED.language END,
       timezone = CASE WHEN $10 THEN EXCLUDED.timezone ELSE patients.timezone END,
       detailed_messages = CASE WHEN $11::boolean IS NULL THEN patients.detailed_messages ELSE EXCLUDED.detailed_messages END,
       line_type = CASE WHEN patients.phone_index = EXCLUDED.phone_index THEN patients.line_type END,
       updated_at = now()
     RETURNING ${COLUMNS}, (xmax = 0) AS created`,
    [
      input.pharmacyId,
      input.externalId,
      keyRing.encrypt(input.firstName),
      keyRing.encryptOptional(input.lastName),
      keyRing.encrypt(input.phone),
      keyRing.blindIndex(input.phone),
      input.language ?? null,
      input.timezone ?? null,
      input.lastName !== undefined,
      input.timezone !== undefined,
      input.detailedMessages ?? null,
    ],
  );
  if (phoneChanged) await forgetConsent(manager, row.id);
  return { created: row.created, changed: true, patient: decryptPatient(keyRing, row) };
}

/**
 * Consent was given for a number. When the number changes (a new phone, or a number reassigned to someone
 * else), nothing is sent to it until the patient consents again: the current consent is cleared and the
 * ledger says why. Locks are taken in the usual order: consents first, then the ledger.
 */
async function forgetConsent(manager: EntityManager, patientId: string): Promise<void> {
  await manager.query(
    `WITH cleared AS (DELETE FROM consents WHERE patient_id = $1 RETURNING patient_id, channel)
     INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor)
     SELECT c.patient_id, p.pharmacy_id, c.channel, 'unknown', 'phone_changed', 'system'
     FROM cleared c JOIN patients p ON p.id = c.patient_id ORDER BY c.channel`,
    [patientId],
  );
}

/** The patient with this id, decrypted, or null. */
export async function readPatient(
  manager: EntityManager,
  keyRing: KeyRing,
  id: string,
): Promise<StoredPatient | null> {
  const [row] = await manager.query<PatientRow[]>(`SELECT ${COLUMNS} FROM patients WHERE id = $1`, [id]);
  return row ? decryptPatient(keyRing, row) : null;
}

function wouldChange(stored: StoredPatient, input: PatientUpsert): boolean {
  return (
    stored.firstName !== input.firstName ||
    stored.phone !== input.phone ||
    (input.lastName !== undefined && stored.lastName !== input.lastName) ||
    (input.language != null && stored.language !== input.language) ||
    (input.timezone !== undefined && stored.timezone !== input.timezone) ||
    (input.detailedMessages != null && stored.detailedMessages !== input.detailedMessages)
  );
}

function decryptPatient(keyRing: KeyRing, row: PatientRow): StoredPatient {
  return {
    id: row.id,
    pharmacyId: row.pharmacy_id,
    externalId: row.external_id,
    firstName: keyRing.decrypt(row.first_name_enc),
    lastName: keyRing.decryptOptional(row.last_name_enc),
    phone: keyRing.decrypt(row.phone_enc),
    language: row.language,
    timezone: row.timezone,
    detailedMessages: row.detailed_messages,
  };
}
