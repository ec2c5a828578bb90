import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Opaque identifiers behind the hot unique and lookup indexes: compared byte by byte, never sorted for people. */
const IDENTIFIERS: [table: string, column: string][] = [
  ['fills', 'external_id'],
  ['fills', 'rx_number'],
  ['patients', 'external_id'],
  ['patients', 'phone_index'],
  ['notifications', 'dedup_key'],
  ['messages', 'provider_sid'],
  ['inbound_messages', 'message_sid'],
  ['api_keys', 'key_hash'],
];

/**
 * Identifiers get the "C" collation. Under the database's default (C.UTF-8 or en_US.UTF-8), every comparison in
 * these columns' B-trees goes through the locale's strcoll; in byte order it is a memcmp. Inserting 100,000
 * fills took about a quarter less time (bench/README.md). Equality is unchanged for every value (both
 * collations are deterministic); only an ORDER BY on these columns would change, and nothing orders by them.
 * The indexes are rebuilt, not the tables: plan the upgrade for a quiet hour on a large database
 * (docs/operations.md, "Upgrades").
 */
export class IdentifierCollation1732900000000 implements MigrationInterface {
  name = 'IdentifierCollation1732900000000';

  async up(q: QueryRunner): Promise<void> {
    for (const [table, column] of IDENTIFIERS)
      await q.query(`ALTER TABLE ${table} ALTER COLUMN ${column} TYPE text COLLATE "C"`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const [table, column] of IDENTIFIERS)
      await q.query(`ALTER TABLE ${table} ALTER COLUMN ${column} TYPE text COLLATE "default"`);
  }
}
