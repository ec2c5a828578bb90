import type { MigrationInterface, QueryRunner } from 'typeorm';

const CHAINS = ['consent_events', 'message_attempts', 'access_log'];

/**
 * The append-only trigger as this migration leaves it: a sealing UPDATE is let through and chained, anything else
 * refused. Exported for the migration that replaces it (its `down` puts this back).
 */
export const APPEND_ONLY_V1 = `
      CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        head audit_chain_heads;
      BEGIN
        IF TG_OP = 'UPDATE' THEN
          IF OLD.hash IS NULL
             AND to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash'] = to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash'] THEN
            SELECT * INTO head FROM audit_chain_heads WHERE chain = TG_TABLE_NAME FOR UPDATE;
            NEW.seq := head.seq + 1;
            NEW.prev_hash := head.hash;
            NEW.hash := encode(digest(head.hash || E'\\n' || audit_canonical(TG_TABLE_NAME,
                          to_jsonb(NEW) || jsonb_build_object('at', audit_ts(NEW.at))), 'sha256'), 'hex');
            UPDATE audit_chain_heads SET seq = NEW.seq, hash = NEW.hash WHERE chain = TG_TABLE_NAME;
            RETURN NEW;
          END IF;
        END IF;
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`;

/**
 * Seals up to max_rows committed rows of one chain, in id order; 0 when none wait, or when another session is
 * sealing the chain and wait is false. Exported as APPEND_ONLY_V1 is.
 */
export const AUDIT_SEAL_V1 = `
      CREATE OR REPLACE FUNCTION audit_seal(tbl text, max_rows integer, wait boolean DEFAULT false) RETURNS integer
      LANGUAGE plpgsql AS $$
      DECLARE
        r record;
        n integer := 0;
      BEGIN
        IF tbl NOT IN ('consent_events', 'message_attempts', 'access_log') THEN
          RAISE EXCEPTION 'no audit chain named %', tbl;
        END IF;
        IF wait THEN
          PERFORM 1 FROM audit_chain_heads WHERE chain = tbl FOR UPDATE;
        ELSE
          PERFORM 1 FROM audit_chain_heads WHERE chain = tbl FOR UPDATE SKIP LOCKED;
          IF NOT FOUND THEN
            RETURN 0;
          END IF;
        END IF;
        FOR r IN EXECUTE format('SELECT id FROM %I WHERE hash IS NULL ORDER BY id LIMIT $1', tbl) USING max_rows
        LOOP
          -- The trigger assigns seq, prev_hash and hash.
          EXECUTE format('UPDATE %I SET hash = '''' WHERE id = $1 AND hash IS NULL', tbl) USING r.id;
          n := n + 1;
        END LOOP;
        RETURN n;
      END $$`;

/**
 * Audit rows are chained shortly after they commit, instead of by the inserting transaction.
 *
 * Before, each insert took the chain head's row lock and held it until its transaction committed, so every
 * transaction writing an audit row (each send, each callback, each read of patient data) queued behind the
 * one before it, commit and all: under load that queue was the largest wait in Postgres (bench/README.md).
 * Now an insert only stamps its time, and the row is written durably with its transaction as before.
 *
 * Sealing is an UPDATE of a row that has no hash yet which changes nothing but the chain columns; the trigger
 * then assigns them itself, under the head's row lock, exactly as the insert trigger did: `seq` the head's
 * next, `prev_hash` the head's hash, `hash` over the row. Whoever runs such an update can therefore only
 * seal rows correctly; any other UPDATE, DELETE or TRUNCATE is refused as before. `audit_seal(chain,
 * max_rows, wait)` seals up to max_rows committed rows in id order in one transaction; every app calls it
 * every 200 ms (AuditSealer, which skips a chain another session is sealing), and `audit verify` and
 * `audit export` call it waiting for the head, so they see every row committed before them. The chain scheme
 * and what verification checks are unchanged (docs/security.md).
 */
export class AuditSealing1732600000000 implements MigrationInterface {
  name = 'AuditSealing1732600000000';

  async up(q: QueryRunner): Promise<void> {
    for (const table of CHAINS) {
      await q.query(
        `ALTER TABLE ${table} ALTER COLUMN seq DROP NOT NULL, ALTER COLUMN prev_hash DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL`,
      );
      await q.query(`CREATE INDEX IF NOT EXISTS ${table}_unsealed_idx ON ${table} (id) WHERE hash IS NULL`);
    }
    // An insert stamps its time; the chain columns are assigned when the row is sealed.
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.seq := NULL;
        NEW.prev_hash := NULL;
        NEW.hash := NULL;
        NEW.at := date_trunc('microseconds', coalesce(NEW.at, now()));
        RETURN NEW;
      END $$`);
    await q.query(APPEND_ONLY_V1);
    await q.query(AUDIT_SEAL_V1);
  }

  async down(q: QueryRunner): Promise<void> {
    // Chain at insert time again first, so nothing new waits; then seal what waits, waiting for any sealer.
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE head audit_chain_heads;
      DECLARE r jsonb;
      BEGIN
        UPDATE audit_chain_heads SET seq = seq + 1 WHERE chain = TG_TABLE_NAME RETURNING * INTO head;
        NEW.seq := head.seq;
        NEW.at := date_trunc('microseconds', coalesce(NEW.at, now()));
        NEW.prev_hash := head.hash;
        r := to_jsonb(NEW) || jsonb_build_object('at', audit_ts(NEW.at));
        NEW.hash := encode(digest(head.hash || E'\\n' || audit_canonical(TG_TABLE_NAME, r), 'sha256'), 'hex');
        UPDATE audit_chain_heads SET hash = NEW.hash WHERE chain = TG_TABLE_NAME;
        RETURN NEW;
      END $$`);
    for (const table of CHAINS) {
      for (;;) {
        const [{ n }] = (await q.query(`SELECT audit_seal($1, 50, true) AS n`, [table])) as { n: number }[];
        if (n === 0) break;
      }
    }
    await q.query(`DROP FUNCTION audit_seal(text, integer, boolean)`);
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    for (const table of CHAINS) {
      await q.query(`DROP INDEX IF EXISTS ${table}_unsealed_idx`);
      await q.query(
        `ALTER TABLE ${table} ALTER COLUMN seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL`,
      );
    }
  }
}
