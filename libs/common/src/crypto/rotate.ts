import type { DataSource } from 'typeorm';
import type { KeyRing } from './key-ring';

/** Every column that holds PHI ciphertext, with the key that identifies its row (and that key's type). */
export const ENCRYPTED_COLUMNS: {
  table: string;
  key: string;
  keyType: 'uuid' | 'bigint';
  columns: string[];
}[] = [
  {
    table: 'patients',
    key: 'id',
    keyType: 'uuid',
    columns: ['first_name_enc', 'last_name_enc', 'phone_enc'],
  },
  { table: 'messages', key: 'id', keyType: 'uuid', columns: ['to_enc', 'body_enc'] },
  { table: 'consent_evidence', key: 'consent_event_id', keyType: 'bigint', columns: ['evidence_enc'] },
];

/**
 * Re-encrypts every value not sealed under the ring's current key, a batch at a time, while the apps run.
 * Each update only applies if the value is still the one read, so a concurrent write is never overwritten
 * (a concurrent write is under the current key already). One pass per column walks the rows in key order,
 * each batch starting after the last, so no batch re-reads the rows before it.
 */
export async function rotateKeys(
  db: DataSource,
  keys: KeyRing,
  batchSize = 500,
): Promise<Record<string, number>> {
  // A prefix test, not LIKE: key ids may hold `_`, which LIKE reads as "any character".
  const current = `v1.${keys.currentKeyId}.`;
  const counts: Record<string, number> = {};
  for (const { table, key, keyType, columns } of ENCRYPTED_COLUMNS) {
    for (const column of columns) {
      let rotated = 0;
      let after: string | null = null;
      for (;;) {
        const rows: { id: string; value: string }[] = await db.query(
          `SELECT ${key}::text AS id, ${column} AS value FROM ${table}
           WHERE ${column} IS NOT NULL AND NOT starts_with(${column}, $1)
             AND ($2::${keyType} IS NULL OR ${key} > $2::${keyType})
           ORDER BY ${key} LIMIT $3`,
          [current, after, batchSize],
        );
        if (rows.length === 0) break;
        after = rows[rows.length - 1].id;
        const updated = await db.query<{ id: string }[]>(
          `WITH batch AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS b(id, old, new)),
                done AS (UPDATE ${table} t SET ${column} = batch.new FROM batch
                         WHERE t.${key} = batch.id::${keyType} AND t.${column} = batch.old RETURNING t.${key})
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
