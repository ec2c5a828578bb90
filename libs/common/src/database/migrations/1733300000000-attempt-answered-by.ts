import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A call's answering-machine verdict (Twilio's `AnsweredBy`: a person, a voicemail, a fax) joins the message's
 * attempt log as its own event, so the evidence for a call says whether a person or a machine heard it. Existing
 * rows and the hash chain are untouched: only the list of events widens.
 */
export class AttemptAnsweredBy1733300000000 implements MigrationInterface {
  name = 'AttemptAnsweredBy1733300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE message_attempts DROP CONSTRAINT IF EXISTS message_attempts_event_check`);
    await q.query(
      `ALTER TABLE message_attempts ADD CONSTRAINT message_attempts_event_check
         CHECK (event IN ('intent', 'result', 'status', 'answered_by'))`,
    );
    // One verdict per call, however often Twilio posts it.
    await q.query(
      `CREATE UNIQUE INDEX IF NOT EXISTS message_attempts_answered_by_key ON message_attempts (message_id)
         WHERE event = 'answered_by'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    // The log is append-only, so verdict rows may stay; the wider check stays with them (a narrower one, even
    // NOT VALID, would refuse the sealing UPDATE of a verdict row and stop the chain).
    await q.query(`DROP INDEX IF EXISTS message_attempts_answered_by_key`);
  }
}
