// Bulk test data in SQL, written the way the apps write it (PHI encrypted with the same key ring).

const CHUNK = 5000;

/** `count` pharmacies sharing `settings`; returns their ids. */
export async function insertPharmacies(db, count, { settings = {}, timezones = ['America/New_York'], name = 'Bench Pharmacy' } = {}) {
  const { rows } = await db.query(
    `INSERT INTO pharmacies (name, timezone, sms_from, callback_phone, settings)
     SELECT $1 || ' ' || i, ($2::text[])[1 + (i % cardinality($2::text[]))],
            '+1415555' || lpad((i % 10000)::text, 4, '0'), '+14155550199', $3::jsonb
     FROM generate_series(0, $4::int - 1) AS i ORDER BY i RETURNING id`,
    [name, timezones, JSON.stringify(settings), count],
  );
  return rows.map((r) => r.id);
}

/** A distinct, well-formed US mobile number per index. */
export const phoneOf = (i) => `+1646${String(i).padStart(7, '0')}`;

/**
 * `count` patients spread round-robin over the pharmacies, each with a distinct phone, optionally opted in to
 * SMS. Returns `[{id, pharmacyId, externalId, phone}]` in index order.
 */
export async function insertPatients(db, keys, pharmacyIds, count, { smsConsent = true, offset = 0 } = {}) {
  const patients = [];
  for (let start = 0; start < count; start += CHUNK) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + CHUNK); i += 1) {
      const n = offset + i;
      const phone = phoneOf(n);
      batch.push({ pharmacyId: pharmacyIds[i % pharmacyIds.length], externalId: `PT-${n}`, phone, name: keys.encrypt(`Patient ${n}`), phoneEnc: keys.encrypt(phone), index: keys.blindIndex(phone) });
    }
    const { rows } = await db.query(
      `INSERT INTO patients (pharmacy_id, external_id, first_name_enc, phone_enc, phone_index)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
       RETURNING id, external_id`,
      [batch.map((b) => b.pharmacyId), batch.map((b) => b.externalId), batch.map((b) => b.name), batch.map((b) => b.phoneEnc), batch.map((b) => b.index)],
    );
    if (smsConsent) {
      await db.query(`INSERT INTO consents (patient_id, channel, status, source) SELECT unnest($1::uuid[]), 'sms', 'opted_in', 'bench'`, [rows.map((r) => r.id)]);
    }
    const ids = new Map(rows.map((r) => [r.external_id, r.id]));
    for (const b of batch) patients.push({ id: ids.get(b.externalId), pharmacyId: b.pharmacyId, externalId: b.externalId, phone: b.phone });
  }
  return patients;
}

/** One fill per patient (status as given; a ready fill is ready now); returns fill ids in patient order. */
export async function insertOneFillPerPatient(db, patients, status) {
  const byPatient = new Map();
  for (let start = 0; start < patients.length; start += CHUNK) {
    const batch = patients.slice(start, start + CHUNK);
    const { rows } = await db.query(
      `INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                          refills_remaining, filled_at, status, ready_at)
       SELECT k.pharmacy_id, k.patient_id, 'F-' || k.n, 'RX-' || k.n, 0, 'Lisinopril 10 mg', 30, 30, 3,
              now() - interval '1 hour', $4, CASE WHEN $4 = 'ready' THEN now() END
       FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS k(pharmacy_id, patient_id, n)
       RETURNING id, patient_id`,
      [batch.map((p) => p.pharmacyId), batch.map((p) => p.id), batch.map((_, i) => start + i), status],
    );
    for (const row of rows) byPatient.set(row.patient_id, row.id);
  }
  return patients.map((p) => byPatient.get(p.id));
}

/**
 * The tables the fixtures above load, for ANALYZE once they are loaded. A production server's autovacuum
 * analyzes a table soon after a bulk load; the reference machine runs Postgres with autovacuum off, so the
 * benchmarks do it themselves, for the tables they loaded only. The tables the product fills while it is
 * measured (messages, message_attempts, access_log...) are left unanalyzed, as in a new database: analyzed while
 * empty, they would keep plans for empty tables for the whole run (docs/operations.md, Upgrades).
 */
export const LOADED_TABLES = ['pharmacies', 'patients', 'consents', 'fills'];

/** VACUUM ANALYZE of the loaded tables (see {@link LOADED_TABLES}) plus any the benchmark loaded itself. */
export async function analyzeLoaded(db, ...more) {
  await db.query(`VACUUM ANALYZE ${[...LOADED_TABLES, ...more].join(', ')}`);
}
