import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The first schema. PHI columns (`*_enc`) hold AES-256-GCM ciphertext from the key ring; `phone_index`
 * is an HMAC blind index. Audit tables (consent_events, message_attempts, access_log) are append-only
 * and hash-chained by triggers, so neither the apps nor a superuser's UPDATE/DELETE can rewrite history
 * unnoticed. The chain scheme is documented in docs/security.md.
 */
export class InitialSchema1732320000000 implements MigrationInterface {
  name = 'InitialSchema1732320000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE EXTENSION IF NOT EXISTS pgcrypto`);

    await q.query(`
      CREATE TABLE pharmacies (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        timezone text NOT NULL,
        sms_from text NOT NULL,
        voice_from text,
        callback_phone text NOT NULL,
        settings jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX pharmacies_sms_from_idx ON pharmacies (sms_from)`);

    await q.query(`
      CREATE TABLE patients (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        pharmacy_id uuid NOT NULL REFERENCES pharmacies(id),
        external_id text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
        first_name_enc text NOT NULL,
        last_name_enc text,
        phone_enc text NOT NULL,
        phone_index text NOT NULL,
        language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'es')),
        timezone text,
        -- learnt from the provider (21614, 30006): a landline cannot take texts, so calls are tried instead
        line_type text CHECK (line_type IN ('mobile', 'landline')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (pharmacy_id, external_id)
      )`);
    await q.query(`CREATE INDEX patients_phone_idx ON patients (pharmacy_id, phone_index)`);

    await q.query(`
      CREATE TABLE consents (
        patient_id uuid NOT NULL REFERENCES patients(id),
        channel text NOT NULL CHECK (channel IN ('sms', 'voice')),
        status text NOT NULL CHECK (status IN ('opted_in', 'opted_out')),
        source text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (patient_id, channel)
      )`);

    await q.query(`
      CREATE TABLE fills (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        pharmacy_id uuid NOT NULL REFERENCES pharmacies(id),
        patient_id uuid NOT NULL REFERENCES patients(id),
        external_id text NOT NULL,
        rx_number text NOT NULL,
        fill_number integer NOT NULL CHECK (fill_number >= 0),
        drug_name text NOT NULL,
        ndc text,
        quantity numeric NOT NULL CHECK (quantity > 0),
        days_supply integer NOT NULL CHECK (days_supply BETWEEN 1 AND 365),
        refills_remaining integer NOT NULL CHECK (refills_remaining >= 0),
        filled_at timestamptz NOT NULL,
        status text NOT NULL CHECK (status IN ('in_progress', 'ready', 'picked_up', 'returned_to_stock', 'cancelled')),
        ready_at timestamptz,
        picked_up_at timestamptz,
        maintenance boolean NOT NULL DEFAULT false,
        therapeutic_class text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (pharmacy_id, external_id),
        CHECK (picked_up_at IS NULL OR ready_at IS NULL OR picked_up_at >= ready_at)
      )`);
    await q.query(`CREATE INDEX fills_patient_rx_idx ON fills (patient_id, rx_number, fill_number)`);

    await q.query(`
      CREATE TABLE notifications (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        pharmacy_id uuid NOT NULL REFERENCES pharmacies(id),
        patient_id uuid NOT NULL REFERENCES patients(id),
        kind text NOT NULL CHECK (kind IN ('ready', 'refill_due', 'renewal_needed', 'unclaimed_pickup', 'adherence_gap')),
        fill_ids uuid[] NOT NULL DEFAULT '{}',
        -- the reminder's place in a series (unclaimed pickup: 1, 2, 3); null for one-off notices
        step smallint CHECK (step BETWEEN 1 AND 10),
        dedup_key text NOT NULL UNIQUE,
        state text NOT NULL DEFAULT 'pending'
          CHECK (state IN ('pending', 'scheduled', 'sending', 'sent', 'delivered', 'failed', 'suppressed', 'cancelled')),
        reason text,
        channel text CHECK (channel IN ('sms', 'voice')),
        due_at timestamptz NOT NULL DEFAULT now(),
        scheduled_for timestamptz,
        lease_owner text,
        lease_expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX notifications_patient_idx ON notifications (patient_id, created_at DESC)`);
    await q.query(
      `CREATE INDEX notifications_open_idx ON notifications (state) WHERE state IN ('pending', 'scheduled', 'sending')`,
    );
    await q.query(`CREATE INDEX notifications_fill_ids_idx ON notifications USING gin (fill_ids)`);

    await q.query(`
      CREATE TABLE messages (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        notification_id uuid NOT NULL REFERENCES notifications(id),
        -- every notification this one message covers (several ready fills go out as one text)
        notification_ids uuid[] NOT NULL,
        pharmacy_id uuid NOT NULL REFERENCES pharmacies(id),
        patient_id uuid NOT NULL REFERENCES patients(id),
        channel text NOT NULL CHECK (channel IN ('sms', 'voice')),
        to_enc text NOT NULL,
        from_number text NOT NULL,
        body_enc text,
        provider_sid text UNIQUE,
        status text NOT NULL
          CHECK (status IN ('intent', 'queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'ringing',
                            'initiated', 'in-progress', 'completed', 'busy', 'no-answer', 'canceled')),
        error_code integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX messages_notification_idx ON messages USING gin (notification_ids)`);
    await q.query(
      `CREATE INDEX messages_open_intents_idx ON messages (notification_id) WHERE status = 'intent'`,
    );
    await q.query(`CREATE INDEX messages_patient_idx ON messages (patient_id, created_at DESC)`);

    await q.query(`
      CREATE TABLE inbound_messages (
        message_sid text PRIMARY KEY,
        pharmacy_id uuid REFERENCES pharmacies(id),
        intent text NOT NULL,
        patients_matched integer NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        key_hash text NOT NULL UNIQUE,
        role text NOT NULL CHECK (role IN ('admin', 'staff', 'integration', 'auditor')),
        pharmacy_id uuid REFERENCES pharmacies(id),
        label text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`);

    // Audit ledgers. `seq` is the chain position, assigned under the chain head's row lock.
    await q.query(`
      CREATE TABLE consent_events (
        id bigserial PRIMARY KEY,
        seq bigint NOT NULL UNIQUE,
        patient_id uuid NOT NULL REFERENCES patients(id),
        pharmacy_id uuid NOT NULL REFERENCES pharmacies(id),
        channel text NOT NULL,
        status text NOT NULL,
        source text NOT NULL,
        actor text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        prev_hash text NOT NULL,
        hash text NOT NULL
      )`);
    await q.query(`CREATE INDEX consent_events_patient_idx ON consent_events (patient_id, seq)`);
    // Free-text evidence is PHI: kept beside the ledger so key rotation can re-encrypt it.
    await q.query(`
      CREATE TABLE consent_evidence (
        consent_event_id bigint PRIMARY KEY REFERENCES consent_events(id),
        evidence_enc text NOT NULL
      )`);

    await q.query(`
      CREATE TABLE message_attempts (
        id bigserial PRIMARY KEY,
        seq bigint NOT NULL UNIQUE,
        message_id uuid NOT NULL REFERENCES messages(id),
        notification_id uuid NOT NULL,
        event text NOT NULL CHECK (event IN ('intent', 'result', 'status')),
        status text NOT NULL,
        provider_sid text,
        error_code integer,
        at timestamptz NOT NULL DEFAULT now(),
        prev_hash text NOT NULL,
        hash text NOT NULL
      )`);
    await q.query(`CREATE INDEX message_attempts_message_idx ON message_attempts (message_id)`);

    await q.query(`
      CREATE TABLE access_log (
        id bigserial PRIMARY KEY,
        seq bigint NOT NULL UNIQUE,
        key_id uuid,
        role text NOT NULL,
        pharmacy_id uuid,
        patient_id uuid,
        action text NOT NULL,
        route text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        prev_hash text NOT NULL,
        hash text NOT NULL
      )`);
    await q.query(`CREATE INDEX access_log_patient_idx ON access_log (patient_id, at)`);

    await q.query(`
      CREATE TABLE audit_chain_heads (
        chain text PRIMARY KEY,
        seq bigint NOT NULL,
        hash text NOT NULL
      )`);
    await q.query(`
      INSERT INTO audit_chain_heads (chain, seq, hash) VALUES
        ('consent_events', 0, repeat('0', 64)),
        ('message_attempts', 0, repeat('0', 64)),
        ('access_log', 0, repeat('0', 64))`);

    // hash = sha256(prev_hash || '\n' || canonical row), the canonical row being the listed columns as text,
    // separated by '|', NULL as the empty string, timestamps as UTC ISO 8601 with microseconds.
    await q.query(`
      CREATE FUNCTION audit_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS
        $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$`);
    await q.query(`
      CREATE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
      DECLARE cols text[];
      BEGIN
        cols := CASE tbl
          WHEN 'consent_events' THEN ARRAY['seq','patient_id','pharmacy_id','channel','status','source','actor','at']
          WHEN 'message_attempts' THEN ARRAY['seq','message_id','notification_id','event','status','provider_sid','error_code','at']
          WHEN 'access_log' THEN ARRAY['seq','key_id','role','pharmacy_id','patient_id','action','route','at']
        END;
        RETURN array_to_string(ARRAY(SELECT coalesce(r->>c, '') FROM unnest(cols) AS c), '|');
      END $$`);
    await q.query(`
      CREATE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql AS $$
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
      CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    for (const table of ['consent_events', 'message_attempts', 'access_log']) {
      await q.query(
        `CREATE TRIGGER ${table}_chain BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION audit_chain_append()`,
      );
      await q.query(
        `CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION audit_append_only()`,
      );
      await q.query(
        `CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE IF EXISTS audit_chain_heads, access_log, message_attempts, consent_evidence, consent_events, api_keys,
        inbound_messages, messages, notifications, fills, consents, patients, pharmacies CASCADE`);
    await q.query(`DROP FUNCTION IF EXISTS audit_append_only, audit_chain_append, audit_canonical, audit_ts`);
  }
}
