import type { DataSource } from 'typeorm';

const DAY_MS = 86_400_000;

export interface PurgeOptions {
  /** Bodies of messages created more than this many days before `now` are erased. */
  bodyRetentionDays: number;
  now: Date;
  batchSize?: number;
}

export interface PurgeReport {
  /** Messages created before this instant had their body erased. */
  before: string;
  purgedMessageBodies: number;
}

/**
 * Erases the text of old messages (`messages.body_enc = NULL`), a batch per short transaction, while the
 * apps run. Everything else stays: the message's recipient, channel, provider sid, status and error code,
 * its notification and every audit record. Audit records are never deleted by rxnotify (see
 * AUDIT_RETENTION_YEARS in docs/security.md).
 *
 * `messages` has no index on created_at, so rather than re-scanning for old rows in every batch, one pass
 * walks the primary key: each batch takes the next `batchSize` ids and erases the old bodies among them.
 */
export async function purgeMessageBodies(db: DataSource, options: PurgeOptions): Promise<PurgeReport> {
  const batchSize = options.batchSize ?? 1000;
  const before = new Date(options.now.getTime() - options.bodyRetentionDays * DAY_MS);
  let after: string | null = null;
  let purged = 0;
  for (;;) {
    const rows: { last: string | null; purged: number }[] = await db.query(
      `WITH page AS (
         SELECT id FROM messages WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2),
       erased AS (
         UPDATE messages m SET body_enc = NULL FROM page
         WHERE m.id = page.id AND m.created_at < $3 AND m.body_enc IS NOT NULL RETURNING m.id)
       SELECT (SELECT id::text FROM page ORDER BY id DESC LIMIT 1) AS last, (SELECT count(*)::int FROM erased) AS purged`,
      [after, batchSize, before],
    );
    const [batch] = rows;
    purged += batch.purged;
    if (batch.last === null) break;
    after = batch.last;
  }
  return { before: before.toISOString(), purgedMessageBodies: purged };
}
