import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When a patient's text was answered. A STOP that arrives while a text to the patient is still in flight is
 * recorded at once but answered 503, and Twilio delivers it again: the first delivery that is answered 200 gets
 * the confirmation, and only later ones get an empty reply. Before, a redelivery counted as a duplicate and the
 * patient never got the confirmation. Rows from before were answered when they came.
 */
export class InboundAnswered1733200000000 implements MigrationInterface {
  name = 'InboundAnswered1733200000000';

  async up(q: QueryRunner): Promise<void> {
    // The default makes a row written by an app still running the code before (a rolling upgrade) count as
    // answered, as it was; the new code writes NULL itself for an opt-out not yet answered.
    await q.query(
      `ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS answered_at timestamptz DEFAULT now()`,
    );
    await q.query(`UPDATE inbound_messages SET answered_at = received_at`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE inbound_messages DROP COLUMN IF EXISTS answered_at`);
  }
}
