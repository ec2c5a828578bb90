import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Detailed messages: a patient who opted in gets texts and calls naming the drug ("Your Lisinopril 10 mg is
 * ready for pickup"). Off by default: DESIGN.md, "by default no drug name or other PHI beyond the pharmacy's
 * name". A constant default, so adding the column rewrites no rows.
 */
export class DetailedMessages1732400000000 implements MigrationInterface {
  name = 'DetailedMessages1732400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE patients ADD COLUMN IF NOT EXISTS detailed_messages boolean NOT NULL DEFAULT false`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE patients DROP COLUMN IF EXISTS detailed_messages`);
  }
}
