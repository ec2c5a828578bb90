import type { DataSource, QueryRunner } from 'typeorm';

const DAY_MS = 86_400_000;
/** One id for every purge (the scheduler's daily job on any replica, the CLI): never two at once. */
const PURGE_LOCK = 7270065;

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
export async function purgeMessageBodies(
  db: DataSource | QueryRunner,
  options: PurgeOptions,
): Promise<PurgeReport> {
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

/**
 * {@link purgeMessageBodies} unless another purge holds the lock (a second scheduler replica's run, an operator's
 * CLI run): then nothing is done and null is returned, since that run erases the same bodies.
 */
export async function purgeMessageBodiesExclusively(
  db: DataSource,
  options: PurgeOptions,
): Promise<PurgeReport | null> {
  const session = db.createQueryRunner();
  await session.connect();
  try {
    const [{ locked }] = (await session.query('SELECT pg_try_advisory_lock($1) AS locked', [PURGE_LOCK])) as {
      locked: boolean;
    }[];
    if (!locked) return null;
    try {
      // On the lock's own connection: the purge needs no second one from the pool.
      return await purgeMessageBodies(session, options);
    } finally {
      await session.query('SELECT pg_advisory_unlock($1)', [PURGE_LOCK]);
    }
  } finally {
    await session.release();
  }
}
