import { createHash, randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { preparedQuery } from '../database/prepared';

export const ROLES = ['admin', 'staff', 'integration', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling: resolved from the API key on every request, never cached, so revocation is immediate. */
export interface Principal {
  keyId: string;
  role: Role;
  /** null: the key reaches every pharmacy. */
  pharmacyId: string | null;
}

const KEY_PREFIX = 'rxn_';

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force. */
export async function createApiKey(
  db: DataSource,
  input: { role: Role; pharmacyId: string | null; label: string },
): Promise<{ id: string; key: string }> {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const [row] = await db.query<{ id: string }[]>(
    `INSERT INTO api_keys (key_hash, role, pharmacy_id, label) VALUES ($1, $2, $3, $4) RETURNING id`,
    [hashApiKey(key), input.role, input.pharmacyId, input.label],
  );
  return { id: row.id, key };
}

/** Revokes by the key itself or by its id; true when a live key was revoked. */
export async function revokeApiKey(db: DataSource, keyOrId: string): Promise<boolean> {
  const byId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(keyOrId);
  const rows = await db.query<{ id: string }[]>(
    `WITH revoked AS (
       UPDATE api_keys SET revoked_at = now() WHERE ${byId ? 'id = $1::uuid' : 'key_hash = $1'} AND revoked_at IS NULL RETURNING id)
     SELECT * FROM revoked`,
    [byId ? keyOrId : hashApiKey(keyOrId)],
  );
  return rows.length > 0;
}

export async function findPrincipal(db: DataSource, key: string): Promise<Principal | null> {
  if (!key.startsWith(KEY_PREFIX) || key.length > 100) return null;
  // Every authenticated request makes this lookup: a named statement, planned once per connection.
  const rows = await preparedQuery<{ id: string; role: Role; pharmacy_id: string | null }>(
    db,
    'auth.find-principal',
    `SELECT id, role, pharmacy_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
    [hashApiKey(key)],
  );
  return rows[0] ? { keyId: rows[0].id, role: rows[0].role, pharmacyId: rows[0].pharmacy_id } : null;
}

/** Whether a principal may touch a record of this pharmacy. Out of scope reads as "not found", never "forbidden". */
export function canReach(principal: Principal, pharmacyId: string): boolean {
  return principal.pharmacyId === null || principal.pharmacyId === pharmacyId;
}
