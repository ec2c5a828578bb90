import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The scan looks for fills whose supply runs out around today. Picked-up history is most of the fills table
 * and almost all of it ran out long ago: this index on the run-out date (service date in UTC + days supply)
 * lets the refill and adherence scans read only the fills near today (bench/README.md, `scan`). The scans
 * still compute each fill's run-out in the patient's own time zone; the index only narrows the candidates,
 * with two days of slack for the difference between a local date and the UTC one.
 *
 * Built in the migration's transaction: on a large existing table, plan the upgrade for a quiet hour
 * (docs/operations.md, "Upgrades").
 */
export class FillsRunOutIndex1732500000000 implements MigrationInterface {
  name = 'FillsRunOutIndex1732500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX IF NOT EXISTS fills_run_out_idx
        ON fills (((coalesce(picked_up_at, filled_at) AT TIME ZONE 'UTC')::date + days_supply))
        WHERE status = 'picked_up'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS fills_run_out_idx`);
  }
}
