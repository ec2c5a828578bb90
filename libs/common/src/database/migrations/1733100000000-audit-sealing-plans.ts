import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AUDIT_SEAL_V2 } from './1733000000000-audit-sealing-cost';

/**
 * One chain's sealing: the waiting rows are read through a cursor planned for this call, and each is sealed
 * where the cursor stands, so no statement's cost depends on a plan made while the table was smaller.
 */
const sealLoop = (chain: string) => `
          OPEN rows FOR EXECUTE
            'SELECT id FROM ${chain} WHERE hash IS NULL ORDER BY id LIMIT $1 FOR UPDATE' USING max_rows;
          LOOP
            FETCH rows INTO rid;
            EXIT WHEN NOT FOUND;
            -- The trigger assigns seq, prev_hash and hash.
            UPDATE ${chain} SET hash = '' WHERE CURRENT OF rows;
            n := n + 1;
          END LOOP;
          CLOSE rows;`;

/** Whether a row of the chain waits for its seal, planned for this call (the partial index `<chain>_unsealed_idx`). */
const waiting = (chain: string) =>
  `EXECUTE 'SELECT EXISTS (SELECT 1 FROM ${chain} WHERE hash IS NULL)' INTO pending;`;

/**
 * `audit_seal` no longer depends on a plan kept from when a chain was small; it seals the same rows in the same
 * order, with the same `seq`, `prev_hash` and `hash`.
 *
 * PL/pgSQL keeps a plain statement's plan for the whole session, and Postgres replans it only when the table's
 * statistics change. An app's connection lives for hours, and on a server without autovacuum (or before its
 * first ANALYZE) the statistics never change. A chain that was nearly empty when the session started was then
 * sealed with plans for a nearly empty table: each row's `UPDATE ... WHERE id = rid` read the whole table, and
 * the "does a row wait?" test did too once every row was sealed. In the dispatcher benchmark (20,000 texts,
 * 80,000 attempt rows) sealing took most of a core of Postgres and fell 50,000 rows behind.
 *
 * Now the two table reads of a call (does a row wait, which rows) are planned for that call with EXECUTE, once
 * per call rather than once per row, and each row is updated `WHERE CURRENT OF` the cursor, which finds the
 * row by its position and has only one plan.
 */
export class AuditSealingPlans1733100000000 implements MigrationInterface {
  name = 'AuditSealingPlans1733100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_seal(tbl text, max_rows integer, wait boolean DEFAULT false) RETURNS integer
      LANGUAGE plpgsql AS $$
      DECLARE
        rid bigint;
        n integer := 0;
        pending boolean;
        rows refcursor;
      BEGIN
        IF tbl NOT IN ('consent_events', 'message_attempts', 'access_log') THEN
          RAISE EXCEPTION 'no audit chain named %', tbl;
        END IF;
        -- Nothing waits (a row another session is sealing still looks unsealed here): no lock, no commit to flush.
        IF tbl = 'consent_events' THEN ${waiting('consent_events')}
        ELSIF tbl = 'message_attempts' THEN ${waiting('message_attempts')}
        ELSE ${waiting('access_log')}
        END IF;
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
      END $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(AUDIT_SEAL_V2);
  }
}
