import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { KeyRing } from '../crypto/key-ring';

/** The columns each chain hashes, in order. docs/security.md states the same scheme for auditors. */
export const CHAIN_COLUMNS = {
  consent_events: ['seq', 'patient_id', 'pharmacy_id', 'channel', 'status', 'source', 'actor', 'at'],
  message_attempts: [
    'seq',
    'message_id',
    'notification_id',
    'event',
    'status',
    'provider_sid',
    'error_code',
    'at',
  ],
  access_log: ['seq', 'key_id', 'role', 'pharmacy_id', 'patient_id', 'action', 'route', 'at'],
} as const;

export type ChainName = keyof typeof CHAIN_COLUMNS;

/**
 * Columns hashed after the others only when the row has a value (so rows chained before they existed keep their
 * hash): a consent event's MAC of its evidence (migration 1732800000000-consent-evidence-integrity).
 */
export const OPTIONAL_CHAIN_COLUMNS: Record<ChainName, readonly string[]> = {
  consent_events: ['evidence_mac'],
  message_attempts: [],
  access_log: [],
};

/** The text a row's hash covers, from its chained columns as text (NULL: null or ''). */
export function canonicalRow(chain: ChainName, row: Record<string, string | null | undefined>): string {
  const parts = CHAIN_COLUMNS[chain].map((c) => row[c] ?? '');
  for (const c of OPTIONAL_CHAIN_COLUMNS[chain]) {
    const value = row[c];
    if (value !== null && value !== undefined && value !== '') parts.push(value);
  }
  return parts.join('|');
}
export const CHAINS = Object.keys(CHAIN_COLUMNS) as ChainName[];

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainBreak {
  chain: ChainName;
  id: string;
  seq: string;
  problem: string;
}

export interface ChainReport {
  chain: ChainName;
  rows: number;
  head: string;
  broken: ChainBreak | null;
}

export function rowHash(prevHash: string, canonical: string): string {
  return createHash('sha256').update(`${prevHash}\n${canonical}`).digest('hex');
}

/**
 * Rows one sealing transaction chains at most. Each row moves the chain head, one row updated once per sealed
 * row within the transaction, and every update walks the versions before it: 500 a transaction cost the
 * dispatcher benchmark a third of a core in Postgres, 50 a fraction of that.
 */
const SEAL_BATCH = 50;
/** A row still without its seal this long after it was written means sealing has stopped. */
const SEAL_OVERDUE = '1 minute';

/**
 * Chains the committed rows of `chain` that have no hash yet (all of them, batch after batch); returns how
 * many. Rows are written without their chain columns and sealed shortly after by `audit_seal` (migration
 * 1732600000000-audit-sealing). Without `wait`, a chain another session is sealing is left to it (0); with
 * it, this waits for that session and then seals every row committed before.
 */
export async function sealChain(db: DataSource, chain: ChainName, wait = false): Promise<number> {
  let total = 0;
  for (;;) {
    const [{ sealed }] = await db.query<{ sealed: number }[]>(`SELECT audit_seal($1, $2, $3) AS sealed`, [
      chain,
      SEAL_BATCH,
      wait,
    ]);
    total += sealed;
    if (sealed < SEAL_BATCH) return total;
  }
}

/**
 * Seals every row committed so far (see {@link sealChain}), then recomputes every hash of the chain in `seq`
 * order, in pages, without trusting the stored ones.
 */
export async function verifyChain(db: DataSource, chain: ChainName, pageSize = 5000): Promise<ChainReport> {
  await sealChain(db, chain, true);
  const columns = CHAIN_COLUMNS[chain];
  const select = [...columns, ...OPTIONAL_CHAIN_COLUMNS[chain]]
    .map((c) => (c === 'at' ? `audit_ts(at) AS at` : `coalesce(${c}::text, '') AS ${c}`))
    .join(', ');
  let prev = GENESIS_HASH;
  let after = '0';
  let rows = 0;
  let expectedSeq = 1n;
  for (;;) {
    const page = await db.query<Record<string, string>[]>(
      `SELECT id::text AS row_id, prev_hash, hash, ${select} FROM ${chain} t WHERE t.seq > $1 ORDER BY t.seq LIMIT $2`,
      [after, pageSize],
    );
    for (const row of page) {
      const canonical = canonicalRow(chain, row);
      const where = { chain, id: row.row_id, seq: row.seq };
      if (BigInt(row.seq) !== expectedSeq) {
        return {
          chain,
          rows,
          head: prev,
          broken: { ...where, problem: `sequence gap: expected ${expectedSeq}` },
        };
      }
      if (row.prev_hash !== prev) {
        return {
          chain,
          rows,
          head: prev,
          broken: { ...where, problem: 'prev_hash does not match the previous row' },
        };
      }
      if (rowHash(prev, canonical) !== row.hash) {
        return {
          chain,
          rows,
          head: prev,
          broken: { ...where, problem: 'hash does not match the row content' },
        };
      }
      prev = row.hash;
      rows += 1;
      expectedSeq += 1n;
    }
    if (page.length < pageSize) break;
    after = page[page.length - 1].seq;
  }
  const [overdue] = await db.query<{ id: string }[]>(
    `SELECT id::text FROM ${chain} WHERE hash IS NULL AND at < now() - interval '${SEAL_OVERDUE}' ORDER BY id LIMIT 1`,
  );
  if (overdue) {
    return {
      chain,
      rows,
      head: prev,
      broken: { chain, id: overdue.id, seq: '-', problem: `not sealed ${SEAL_OVERDUE} after it was written` },
    };
  }
  const [head] = await db.query<{ seq: string; hash: string }[]>(
    `SELECT seq::text, hash FROM audit_chain_heads WHERE chain = $1`,
    [chain],
  );
  if (head && (head.hash !== prev || BigInt(head.seq) !== BigInt(rows))) {
    return {
      chain,
      rows,
      head: prev,
      broken: {
        chain,
        id: '-',
        seq: head.seq,
        problem: 'rows after the last verified one are missing (chain head is ahead)',
      },
    };
  }
  return { chain, rows, head: prev, broken: null };
}

/**
 * Checks every consent evidence against the MAC its (chained) consent event recorded: the evidence is ciphertext
 * that key rotation may rewrite, so its plaintext is what must not change. Returns the first mismatch, naming the
 * consent event, or null. Evidence of events written before the MAC existed has none to check against.
 */
export async function verifyConsentEvidence(
  db: DataSource,
  keys: KeyRing,
  pageSize = 1000,
): Promise<ChainBreak | null> {
  let after = '0';
  for (;;) {
    const page = await db.query<
      { id: string; seq: string | null; evidence_mac: string; evidence_enc: string | null }[]
    >(
      `SELECT e.id::text, e.seq::text, e.evidence_mac, v.evidence_enc
       FROM consent_events e LEFT JOIN consent_evidence v ON v.consent_event_id = e.id
       WHERE e.evidence_mac IS NOT NULL AND e.id > $1::bigint ORDER BY e.id LIMIT $2`,
      [after, pageSize],
    );
    for (const row of page) {
      const where = { chain: 'consent_events' as const, id: row.id, seq: row.seq ?? '-' };
      if (row.evidence_enc === null) return { ...where, problem: 'consent evidence is missing' };
      let plaintext: string;
      try {
        plaintext = keys.decrypt(row.evidence_enc);
      } catch {
        return { ...where, problem: 'consent evidence does not decrypt' };
      }
      if (keys.evidenceMac(plaintext) !== row.evidence_mac) {
        return { ...where, problem: 'consent evidence does not match the MAC in its event' };
      }
    }
    if (page.length < pageSize) return null;
    after = page[page.length - 1].id;
  }
}
