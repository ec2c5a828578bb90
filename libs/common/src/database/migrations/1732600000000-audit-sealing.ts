import type { MigrationInterface, QueryRunner } from 'typeorm';

const CHAINS = ['consent_events', 'message_attempts', 'access_log'];

/**
 * Audit rows are chained by a sealer, shortly after they commit, instead of by the inserting transaction.
 *
 * Before, each insert took the chain head's row lock and held it until its transaction committed, so every
 * transaction writing an audit row (each send, each callback, each read of patient data) queued behind the
 * one before it, commit and all: under load that queue was the largest wait in Postgres (bench/README.md).
 * Now an insert only stamps its time; the row is written durably with its transaction as before. `audit_seal`
 * then gives the committed rows without a hash their `seq`, `prev_hash` and `hash`, in id order, under the
 * head's lock, many rows per transaction. Every app calls it every 200 ms (AuditSealer); `audit verify` and
 * `audit export` call it first. The chain scheme and what verification checks are unchanged
 * (docs/security.md).
 *
 * The append-only trigger still refuses every UPDATE, DELETE and TRUNCATE, except the sealer's own update:
 * one that only fills in the three chain columns of a row that had none, inside `audit_seal`.
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
    // An insert stamps its time; the chain columns are the sealer's alone.
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.seq := NULL;
        NEW.prev_hash := NULL;
        NEW.hash := NULL;
        NEW.at := date_trunc('microseconds', coalesce(NEW.at, now()));
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'UPDATE' THEN
          IF current_setting('rxnotify.audit_sealing', true) = TG_TABLE_NAME AND OLD.hash IS NULL
             AND NEW.hash IS NOT NULL
             AND to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash'] = to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash'] THEN
            RETURN NEW;
          END IF;
        END IF;
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    // Seals up to max_rows committed rows of one chain; 0 when none are waiting or another session is sealing it.
    await q.query(`
      CREATE FUNCTION audit_seal(tbl text, max_rows integer) RETURNS integer LANGUAGE plpgsql AS $$
      DECLARE
        head audit_chain_heads;
        r record;
        h text;
        n integer := 0;
      BEGIN
        IF tbl NOT IN ('consent_events', 'message_attempts', 'access_log') THEN
          RAISE EXCEPTION 'no audit chain named %', tbl;
        END IF;
        SELECT * INTO head FROM audit_chain_heads WHERE chain = tbl FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
          RETURN 0;
        END IF;
        PERFORM set_config('rxnotify.audit_sealing', tbl, true);
        FOR r IN EXECUTE format(
          'SELECT id, to_jsonb(t) || jsonb_build_object(''at'', audit_ts(t.at)) AS j FROM %I t
           WHERE hash IS NULL ORDER BY id LIMIT $1 FOR UPDATE', tbl) USING max_rows
        LOOP
          head.seq := head.seq + 1;
          h := encode(digest(head.hash || E'\\n' || audit_canonical(tbl, r.j || jsonb_build_object('seq', head.seq)), 'sha256'), 'hex');
          EXECUTE format('UPDATE %I SET seq = $1, prev_hash = $2, hash = $3 WHERE id = $4', tbl)
            USING head.seq, head.hash, h, r.id;
          head.hash := h;
          n := n + 1;
        END LOOP;
        IF n > 0 THEN
          UPDATE audit_chain_heads SET seq = head.seq, hash = head.hash WHERE chain = tbl;
        END IF;
        PERFORM set_config('rxnotify.audit_sealing', '', true);
        RETURN n;
      END $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    // Seal what is waiting, then go back to chaining at insert time.
    for (const table of CHAINS) {
      await q.query(`SELECT audit_seal($1, 2147483647)`, [table]);
    }
    await q.query(`DROP FUNCTION audit_seal(text, integer)`);
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
