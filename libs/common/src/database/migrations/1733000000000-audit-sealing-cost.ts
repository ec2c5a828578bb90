import type { MigrationInterface, QueryRunner } from 'typeorm';
import { APPEND_ONLY_V1, AUDIT_SEAL_V1 } from './1732600000000-audit-sealing';

/** One sealing loop, written out per chain so that its two statements are planned once per session. */
const sealLoop = (chain: string) => `
          FOR rid IN SELECT id FROM ${chain} WHERE hash IS NULL ORDER BY id LIMIT max_rows LOOP
            -- The trigger assigns seq, prev_hash and hash.
            UPDATE ${chain} SET hash = '' WHERE id = rid AND hash IS NULL;
            n := n + 1;
          END LOOP;`;

/** Whether a row of the chain waits for its seal (the partial index `<chain>_unsealed_idx`). */
const waiting = (chain: string) => `EXISTS (SELECT 1 FROM ${chain} WHERE hash IS NULL)`;

/** The append-only trigger as this migration leaves it (a later migration's `down` restores it). */
export const APPEND_ONLY_V2 = `
      CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        head audit_chain_heads;
        -- text, not name: a name (and a name cast to text) compares in the "C" collation, which the head's key
        -- does not have.
        chain_name text := TG_TABLE_NAME;
      BEGIN
        IF TG_OP = 'UPDATE' THEN
          IF OLD.hash IS NULL
             AND to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash'] = to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash'] THEN
            SELECT * INTO head FROM audit_chain_heads WHERE chain = chain_name FOR UPDATE;
            NEW.seq := head.seq + 1;
            NEW.prev_hash := head.hash;
            NEW.hash := encode(digest(head.hash || E'\\n' || audit_canonical(TG_TABLE_NAME,
                          to_jsonb(NEW) || jsonb_build_object('at', audit_ts(NEW.at))), 'sha256'), 'hex');
            UPDATE audit_chain_heads SET seq = NEW.seq, hash = NEW.hash WHERE chain = chain_name;
            RETURN NEW;
          END IF;
        END IF;
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`;

/** `audit_seal` as this migration leaves it (a later migration's `down` restores it). */
export const AUDIT_SEAL_V2 = `
      CREATE OR REPLACE FUNCTION audit_seal(tbl text, max_rows integer, wait boolean DEFAULT false) RETURNS integer
      LANGUAGE plpgsql AS $$
      DECLARE
        rid bigint;
        n integer := 0;
        pending boolean;
      BEGIN
        IF tbl NOT IN ('consent_events', 'message_attempts', 'access_log') THEN
          RAISE EXCEPTION 'no audit chain named %', tbl;
        END IF;
        -- Nothing waits (a row another session is sealing still looks unsealed here): no lock, no commit to flush.
        pending := CASE tbl WHEN 'consent_events' THEN ${waiting('consent_events')}
                            WHEN 'message_attempts' THEN ${waiting('message_attempts')}
                            ELSE ${waiting('access_log')} END;
        IF NOT pending THEN
          RETURN 0;
        END IF;
        IF wait THEN
          PERFORM 1 FROM audit_chain_heads WHERE chain = tbl FOR UPDATE;
        ELSE
          PERFORM 1 FROM audit_chain_heads WHERE chain = tbl FOR UPDATE SKIP LOCKED;
          IF NOT FOUND THEN
            RETURN 0;
          END IF;
        END IF;
        IF tbl = 'consent_events' THEN${sealLoop('consent_events')}
        ELSIF tbl = 'message_attempts' THEN${sealLoop('message_attempts')}
        ELSE${sealLoop('access_log')}
        END IF;
        RETURN n;
      END $$`;

/**
 * Sealing costs less in Postgres, with the same result row for row: the same rows sealed in the same order, the
 * same `seq`, `prev_hash` and `hash`, and the same refusals.
 *
 * - `audit_seal` returns at once when no row of the chain waits. Every app calls it for each chain five times a
 *   second, and each call locked the chain's head, which writes WAL, so each was a commit to flush to disk: 45
 *   a second with three apps, idle or not.
 * - `audit_seal` names its table in plain SQL, one branch per chain, instead of building each statement with
 *   EXECUTE format(): PL/pgSQL keeps the plan of a plain statement and plans an EXECUTE every time, twice per
 *   row sealed. Sealing 5,000 access-log rows 50 at a time took 720–740 ms of Postgres before, 520–560 after.
 * - The append-only trigger finds the chain's head by a text variable. It compared `chain` with `TG_TABLE_NAME`,
 *   a `name`, whose "C" collation the head table's key does not have, so each sealed row read the whole head
 *   table twice instead of one index entry. That costs little while the table is one page, and much once
 *   updates have spread it over many (5,000 rows: 550–575 against 316–329 ms with the table at 308 pages).
 */
export class AuditSealingCost1733000000000 implements MigrationInterface {
  name = 'AuditSealingCost1733000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(APPEND_ONLY_V2);
    await q.query(AUDIT_SEAL_V2);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(APPEND_ONLY_V1);
    await q.query(AUDIT_SEAL_V1);
  }
}
