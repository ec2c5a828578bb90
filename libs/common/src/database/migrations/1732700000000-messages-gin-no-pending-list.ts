import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every claim asks whether a notification already has an open message (`messages.notification_ids && …`),
 * through this GIN index. With GIN's fast update on, new entries wait in a pending list that every search
 * reads in full until the next vacuum, so under a steady stream of sends each claim read a longer list: the
 * dispatcher's Postgres time per message tripled between 2,000 and 20,000 messages (bench/README.md). With
 * it off, each insert updates the index itself, and a search costs the same however many messages came before.
 */
export class MessagesGinNoPendingList1732700000000 implements MigrationInterface {
  name = 'MessagesGinNoPendingList1732700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX messages_notification_idx SET (fastupdate = off)`);
    // Entries already pending move into the index proper.
    await q.query(`SELECT gin_clean_pending_list('messages_notification_idx'::regclass)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX messages_notification_idx RESET (fastupdate)`);
  }
}
