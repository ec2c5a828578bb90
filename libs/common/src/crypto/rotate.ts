import type { DataSource } from 'typeorm';
import type { KeyRing } from './key-ring';

/** Every column that holds PHI ciphertext, with the key that identifies its row. */
export const ENCRYPTED_COLUMNS: { table: string; key: string; columns: string[] }[] = [
  { table: 'patients', key: 'id', columns: ['first_name_enc', 'last_name_enc', 'phone_enc'] },
  { table: 'messages', key: 'id', columns: ['to_enc', 'body_enc'] },
  { table: 'consent_evidence', key: 'consent_event_id', columns: ['evidence_enc'] },
];

/**
 * Re-encrypts every value not sealed under the ring's current key, a batch at a time, while the apps run.
 * Each update only applies if the value is still the one read, so a concurrent write is never overwritten.
 */
export async function rotateKeys(
  db: DataSource,
  keys: KeyRing,
  batchSize = 500,
): Promise<Record<string, number>> {
  const current = `v1.${keys.currentKeyId}.%`;
  const counts: Record<string, number> = {};
  for (const { table, key, columns } of ENCRYPTED_COLUMNS) {
    for (const column of columns) {
      let rotated = 0;
      for (;;) {
        const rows = await db.query<{ id: string; value: string }[]>(
          `SELECT ${key}::text AS id, ${column} AS value FROM ${table}
           WHERE ${column} IS NOT NULL AND ${column} NOT LIKE $1 LIMIT $2`,
          [current, batchSize],
        );
        if (rows.length === 0) break;
        const updated = await db.query<{ id: string }[]>(
          `WITH batch AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS b(id, old, new)),
                done AS (UPDATE ${table} t SET ${column} = batch.new FROM batch
                         WHERE t.${key}::text = batch.id AND t.${column} = batch.old RETURNING t.${key})
           SELECT count(*)::int AS id FROM done`,
          [
            rows.map((r) => r.id),
            rows.map((r) => r.value),
            rows.map((r) => keys.encrypt(keys.decrypt(r.value))),
          ],
        );
        rotated += Number(updated[0]?.id ?? 0);
      }
      counts[`${table}.${column}`] = rotated;
    }
  }
  return counts;
}
