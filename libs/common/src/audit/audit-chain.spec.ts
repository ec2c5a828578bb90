import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { given } from '../../../../test/helpers/given';
import { KeyRing } from '../crypto/key-ring';
import { dataSourceOptions } from '../database/data-source';
import { CHAIN_COLUMNS, rowHash, sealChain, verifyChain } from './audit-chain';
import { AuditSealer } from './audit-sealer';
import { waitFor } from '../../../../test/helpers/wait';

describe('audit hash chains (real Postgres)', () => {
  let database: TestDatabase;
  let db: DataSource;
  const keys = new KeyRing([{ id: 'k', key: Buffer.alloc(32, 1) }], Buffer.alloc(32, 2));

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
  });

  async function recordConsents(n: number) {
    const pharmacy = await given(db, keys).pharmacy();
    const patient = await given(db, keys).patient(pharmacy);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        db.query(
          `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor) VALUES ($1, $2, 'sms', $3, 'api', 'k')`,
          [patient.id, pharmacy.id, i % 2 ? 'opted_in' : 'opted_out'],
        ),
      ),
    );
  }

  it('chains concurrent inserts into one unbroken sequence', async () => {
    await recordConsents(40);
    const report = await verifyChain(db, 'consent_events');
    expect(report.broken).toBeNull();
    expect(report.rows).toBe(40);
  });

  it('refuses UPDATE, DELETE and TRUNCATE, whoever asks', async () => {
    await expect(db.query(`UPDATE consent_events SET status = 'opted_in'`)).rejects.toThrow(/append-only/);
    await expect(db.query(`DELETE FROM consent_events`)).rejects.toThrow(/append-only/);
    await expect(db.query(`TRUNCATE consent_events CASCADE`)).rejects.toThrow(/append-only/);
  });

  it('names the first row changed behind the trigger', async () => {
    const [victim] = await db.query<{ id: string; seq: string }[]>(
      `SELECT id::text, seq::text FROM consent_events ORDER BY seq OFFSET 9 LIMIT 1`,
    );
    await db.query(`ALTER TABLE consent_events DISABLE TRIGGER consent_events_append_only`);
    await db.query(`UPDATE consent_events SET status = 'opted_in', source = 'forged' WHERE id = $1`, [
      victim.id,
    ]);
    await db.query(`ALTER TABLE consent_events ENABLE TRIGGER consent_events_append_only`);
    const report = await verifyChain(db, 'consent_events');
    expect(report.broken).toMatchObject({
      id: victim.id,
      seq: victim.seq,
      problem: expect.stringMatching(/hash/),
    });
  });

  it('notices rows deleted from the end of a chain', async () => {
    const before = await verifyChain(db, 'access_log');
    expect(before.broken).toBeNull();
    await db.query(
      `INSERT INTO access_log (role, action, route) VALUES ('staff', 'read', '/x'), ('staff', 'read', '/y')`,
    );
    expect(await sealChain(db, 'access_log')).toBe(2);
    await db.query(`ALTER TABLE access_log DISABLE TRIGGER access_log_append_only`);
    await db.query(`DELETE FROM access_log WHERE seq = (SELECT max(seq) FROM access_log)`);
    await db.query(`ALTER TABLE access_log ENABLE TRIGGER access_log_append_only`);
    const after = await verifyChain(db, 'access_log');
    expect(after.broken?.problem).toMatch(/missing/);
  });

  it('writes rows at once and seals them shortly after, in the background, without anyone asking', async () => {
    const sealer = new AuditSealer(db);
    sealer.onApplicationBootstrap();
    try {
      const [row] = await db.query<{ id: string; seq: string | null; hash: string | null }[]>(
        `INSERT INTO access_log (role, action, route) VALUES ('staff', 'read', '/z') RETURNING id::text, seq, hash`,
      );
      expect(row).toMatchObject({ seq: null, hash: null });
      const sealed = await waitFor('the row sealed', async () => {
        const [now] = await db.query<{ seq: string | null; hash: string | null }[]>(
          `SELECT seq::text, hash FROM access_log WHERE id = $1`,
          [row.id],
        );
        return now.hash ? now : null;
      });
      expect(sealed.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(Number(sealed.seq)).toBeGreaterThan(0);
    } finally {
      await sealer.onApplicationShutdown();
    }
  });

  it('seals in a write only when a row waits: an idle round writes nothing to disk', async () => {
    for (const chain of ['consent_events', 'message_attempts', 'access_log'] as const)
      await sealChain(db, chain);
    /** One sealing round in its own transaction: what it sealed, and whether it wrote (took a transaction id). */
    const round = () =>
      db.transaction(async (tx) => {
        const [{ sealed }] = await tx.query<{ sealed: number }[]>(
          `SELECT audit_seal('access_log', 50, false) AS sealed`,
        );
        const [{ xid }] = await tx.query<{ xid: string | null }[]>(
          `SELECT txid_current_if_assigned() AS xid`,
        );
        return { sealed, wrote: xid !== null };
      });
    expect(await round()).toEqual({ sealed: 0, wrote: false });
    await db.query(`INSERT INTO access_log (role, action, route) VALUES ('staff', 'read', '/idle')`);
    expect(await round()).toEqual({ sealed: 1, wrote: true });
    expect(await round()).toEqual({ sealed: 0, wrote: false });
  });

  it('seals a grown chain row by row through its index, whatever the session planned while it was small', async () => {
    // An app's connection lives for hours, and Postgres keeps a function's plans for the session until the next
    // ANALYZE, which a server without autovacuum never runs: plans made for a small table read all of it.
    await sealChain(db, 'access_log', true);
    await db.query(`VACUUM ANALYZE access_log`);
    const session = new Client({ connectionString: database.url });
    await session.connect();
    try {
      for (let i = 0; i < 8; i++) {
        await db.query(`INSERT INTO access_log (role, action, route) VALUES ('staff', 'read', '/small')`);
        await session.query(`SELECT audit_seal('access_log', 50, true)`);
      }
      await db.query(
        `INSERT INTO access_log (role, action, route) SELECT 'staff', 'read', '/grown' FROM generate_series(1, 3000)`,
      );
      // The session's own counter of reads of the whole table, around one call that seals 1,000 rows.
      const tableReads = async () =>
        (
          await session.query<{ n: number }>(
            `SELECT seq_scan::int AS n FROM pg_stat_xact_user_tables WHERE relname = 'access_log'`,
          )
        ).rows[0].n;
      await session.query('BEGIN');
      const before = await tableReads();
      const sealed = await session.query<{ n: number }>(`SELECT audit_seal('access_log', 1000, true) AS n`);
      const reads = (await tableReads()) - before;
      await session.query('COMMIT');
      expect(sealed.rows[0].n).toBe(1000);
      expect(reads).toBeLessThan(5);
    } finally {
      await session.end();
    }
    // The first 1,000 of the new rows, in the order they were written, one after another in the chain.
    const grown = await db.query<{ seq: string }[]>(
      `SELECT seq::text FROM access_log WHERE route = '/grown' AND hash IS NOT NULL ORDER BY id`,
    );
    const first = Number(grown[0].seq);
    expect(grown.map((row) => Number(row.seq))).toEqual(Array.from({ length: 1000 }, (_, i) => first + i));
  });

  it('refuses changes to a row waiting for its seal; a seal written by hand gets the true chain values', async () => {
    const [row] = await db.query<{ id: string }[]>(
      `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor)
       SELECT patient_id, pharmacy_id, 'sms', 'opted_out', 'api', 'k' FROM consent_events LIMIT 1 RETURNING id::text`,
    );
    await expect(
      db.query(`UPDATE consent_events SET status = 'opted_in' WHERE id = $1`, [row.id]),
    ).rejects.toThrow(/append-only/);
    await expect(
      db.query(
        `UPDATE consent_events SET status = 'opted_in', seq = 999999, prev_hash = 'x', hash = 'y' WHERE id = $1`,
        [row.id],
      ),
    ).rejects.toThrow(/append-only/);

    // Touching only the chain columns seals the row, with the values the chain dictates, not the ones given.
    const [before] = await db.query<{ seq: string; hash: string }[]>(
      `SELECT seq::text, hash FROM audit_chain_heads WHERE chain = 'consent_events'`,
    );
    await db.query(`UPDATE consent_events SET seq = 999999, prev_hash = 'x', hash = 'y' WHERE id = $1`, [
      row.id,
    ]);
    const [sealed] = await db.query<Record<string, string>[]>(
      `SELECT seq::text, prev_hash, hash, patient_id::text, pharmacy_id::text, channel, status, source, actor,
              audit_ts(at) AS at
       FROM consent_events WHERE id = $1`,
      [row.id],
    );
    expect(sealed.seq).toBe(String(Number(before.seq) + 1));
    expect(sealed.prev_hash).toBe(before.hash);
    const canonical = CHAIN_COLUMNS.consent_events.map((column) => sealed[column]).join('|');
    expect(sealed.hash).toBe(rowHash(before.hash, canonical));
    const [after] = await db.query<{ seq: string; hash: string }[]>(
      `SELECT seq::text, hash FROM audit_chain_heads WHERE chain = 'consent_events'`,
    );
    expect(after).toEqual({ seq: sealed.seq, hash: sealed.hash });
  });
});
