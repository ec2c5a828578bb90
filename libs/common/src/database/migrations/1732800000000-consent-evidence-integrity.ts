import type { MigrationInterface, QueryRunner } from 'typeorm';

const CANONICAL_V1 = `
      CREATE OR REPLACE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
      DECLARE cols text[];
      BEGIN
        cols := CASE tbl
          WHEN 'consent_events' THEN ARRAY['seq','patient_id','pharmacy_id','channel','status','source','actor','at']
          WHEN 'message_attempts' THEN ARRAY['seq','message_id','notification_id','event','status','provider_sid','error_code','at']
          WHEN 'access_log' THEN ARRAY['seq','key_id','role','pharmacy_id','patient_id','action','route','at']
        END;
        RETURN array_to_string(ARRAY(SELECT coalesce(r->>c, '') FROM unnest(cols) AS c), '|');
      END $$`;

/**
 * Consent evidence becomes tamper-evident. The evidence text is ciphertext in `consent_evidence` (key rotation
 * re-encrypts it, so that row must stay updatable); what is chained is a keyed MAC of its plaintext, stored in
 * the consent event (`consent_events.evidence_mac`, HMAC-SHA256 under PHI_INDEX_KEY) and hashed into the event's
 * chain row. The canonical row gains `|evidence_mac` only when the event has one, so every row chained before
 * keeps its hash. `audit verify` recomputes the MAC of each evidence's plaintext.
 *
 * The database itself refuses DELETE and TRUNCATE of evidence, an UPDATE that moves it to another event, and
 * evidence added to an event that recorded no MAC (after the fact); an UPDATE of the ciphertext is allowed
 * (rotation), and one that changes the plaintext is caught by the MAC.
 */
export class ConsentEvidenceIntegrity1732800000000 implements MigrationInterface {
  name = 'ConsentEvidenceIntegrity1732800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE consent_events ADD COLUMN evidence_mac text`);
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
      DECLARE cols text[];
      DECLARE canonical text;
      BEGIN
        cols := CASE tbl
          WHEN 'consent_events' THEN ARRAY['seq','patient_id','pharmacy_id','channel','status','source','actor','at']
          WHEN 'message_attempts' THEN ARRAY['seq','message_id','notification_id','event','status','provider_sid','error_code','at']
          WHEN 'access_log' THEN ARRAY['seq','key_id','role','pharmacy_id','patient_id','action','route','at']
        END;
        canonical := array_to_string(ARRAY(SELECT coalesce(r->>c, '') FROM unnest(cols) AS c), '|');
        IF tbl = 'consent_events' AND r->>'evidence_mac' IS NOT NULL THEN
          canonical := canonical || '|' || (r->>'evidence_mac');
        END IF;
        RETURN canonical;
      END $$`);
    await q.query(`
      CREATE FUNCTION consent_evidence_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          IF EXISTS (SELECT 1 FROM consent_events WHERE id = NEW.consent_event_id AND evidence_mac IS NOT NULL) THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION 'consent_evidence: the consent event recorded no evidence MAC: INSERT refused'
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.consent_event_id = OLD.consent_event_id THEN
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'consent_evidence is append-only (re-encryption aside): % refused', TG_OP
          USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(
      `CREATE TRIGGER consent_evidence_guard BEFORE INSERT OR UPDATE OR DELETE ON consent_evidence
       FOR EACH ROW EXECUTE FUNCTION consent_evidence_guard()`,
    );
    await q.query(
      `CREATE TRIGGER consent_evidence_no_truncate BEFORE TRUNCATE ON consent_evidence
       FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER IF EXISTS consent_evidence_no_truncate ON consent_evidence`);
    await q.query(`DROP TRIGGER IF EXISTS consent_evidence_guard ON consent_evidence`);
    await q.query(`DROP FUNCTION IF EXISTS consent_evidence_guard()`);
    await q.query(CANONICAL_V1);
    // Dropping the column would change no sealed hash of a row without a MAC; rows with one lose their proof.
    await q.query(`ALTER TABLE consent_events DROP COLUMN evidence_mac`);
  }
}
