import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { preparedQuery } from '@rxnotify/common/database/prepared';
import { WriteBatcher } from '@rxnotify/common/database/write-batcher';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { describeProviderCode, isLandlineCode } from '@rxnotify/common/twilio/sms-provider';
import {
  isKnownStatus,
  LANDLINE_WITHOUT_VOICE,
  notificationStateFor,
  statusesBefore,
} from '../delivery/delivery.policy';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Twilio sids: two letters and 32 hex digits (SM…, MM…, CA…). */
const SID = /^[A-Z]{2}[0-9a-f]{32}$/i;

interface StatusUpdate {
  messageId: string;
  status: string;
  code: number | null;
  sid: string | null;
  state: 'delivered' | 'failed' | null;
  reason: string | null;
}

/** One callback's write: the message moves forward, the attempt is logged, the notification follows. */
const APPLY_ONE = `WITH message AS (
   UPDATE messages SET status = $2, error_code = coalesce($3, error_code),
          provider_sid = coalesce(provider_sid, $4), updated_at = now()
   WHERE id = $1 AND status = ANY($5::text[])
     -- a callback for some other message (its sid already belongs to one, or this one has another) changes nothing
     AND ($4::text IS NULL OR provider_sid = $4 OR (provider_sid IS NULL AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.provider_sid = $4)))
   RETURNING id, notification_id, notification_ids),
 attempt AS (
   INSERT INTO message_attempts (message_id, notification_id, event, status, provider_sid, error_code)
   SELECT id, notification_id, 'status', $2, $4, $3 FROM message),
 notification AS (
   UPDATE notifications SET state = $6, reason = coalesce($7, reason), updated_at = now()
   WHERE $6::text IS NOT NULL AND id = ANY((SELECT notification_ids FROM message)::uuid[]) AND state IN ('sending', 'sent')
   RETURNING id)
 SELECT id FROM message`;

/** The same for many callbacks (no two for one message), in arrival order; returns the positions applied. */
const APPLY_MANY = `WITH input AS (
   SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[])
     WITH ORDINALITY AS i(message_id, status, error_code, sid, before, state, reason, ord)),
 message AS (
   UPDATE messages m SET status = i.status, error_code = coalesce(i.error_code, m.error_code),
          provider_sid = coalesce(m.provider_sid, i.sid), updated_at = now()
   FROM input i
   WHERE m.id = i.message_id AND m.status = ANY(string_to_array(i.before, ','))
     AND (i.sid IS NULL OR m.provider_sid = i.sid
          OR (m.provider_sid IS NULL AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.provider_sid = i.sid)))
   RETURNING m.id, m.notification_id, m.notification_ids, i.status, i.sid, i.error_code, i.state, i.reason, i.ord),
 attempt AS (
   INSERT INTO message_attempts (message_id, notification_id, event, status, provider_sid, error_code)
   SELECT id, notification_id, 'status', status, sid, error_code FROM message ORDER BY ord),
 notification AS (
   UPDATE notifications n SET state = x.state, reason = coalesce(x.reason, n.reason), updated_at = now()
   FROM (SELECT DISTINCT ON (nid) nid, state, reason FROM message, unnest(notification_ids) AS nid
         WHERE state IS NOT NULL ORDER BY nid, ord) x
   WHERE n.id = x.nid AND n.state IN ('sending', 'sent')
   RETURNING n.id)
 SELECT ord::int AS ord FROM message`;

/**
 * A text the carrier reported undeliverable because the number is a landline (21614, 30006): the patient's line
 * is remembered as a landline and the notices it covered are owed again, for a call, when calls are consented;
 * otherwise they fail into the follow-ups with the reason in words. $1 the message id.
 */
const LANDLINE_FALLBACK = `WITH message AS (
   SELECT patient_id, notification_ids, created_at FROM messages WHERE id = $1 AND channel = 'sms'),
 patient AS (
   UPDATE patients SET line_type = 'landline' WHERE id = (SELECT patient_id FROM message) RETURNING id),
 callable AS (
   SELECT EXISTS (SELECT 1 FROM consents WHERE patient_id = (SELECT patient_id FROM message)
                  AND channel = 'voice' AND status = 'opted_in') AS yes),
 owed AS (
   UPDATE notifications SET updated_at = now(),
          state = CASE WHEN (SELECT yes FROM callable) THEN 'pending' ELSE 'failed' END,
          reason = CASE WHEN (SELECT yes FROM callable) THEN NULL ELSE $2 END
   WHERE id = ANY((SELECT notification_ids FROM message)::uuid[]) AND state IN ('sending', 'sent')
     -- Only while this text is the notice's latest send: a redelivered report must not undo the call it led to.
     AND NOT EXISTS (SELECT 1 FROM messages later WHERE later.notification_ids && ARRAY[notifications.id]
                     AND later.created_at > (SELECT created_at FROM message))
   RETURNING id, state)
 SELECT id, state FROM owed`;

@Injectable()
export class StatusService {
  private readonly logger = new Logger(StatusService.name);
  /** A burst of callbacks (two per text) is written in one statement and one commit, not one each. */
  private readonly writes = new WriteBatcher<StatusUpdate, boolean>({
    maxBatchSize: 64,
    key: (update) => update.messageId,
    many: (updates) => this.applyMany(updates),
    one: (update) => this.applyOne(update),
  });

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly queue: NotificationQueue,
  ) {}

  /**
   * Moves a message forward; a status that is not further along (a late "sent" after "delivered") is ignored,
   * so final statuses are sticky and redelivered callbacks are harmless. Resolves once the change committed.
   */
  async apply(
    attemptId: string | undefined,
    status: string | undefined,
    providerSid: string | undefined,
    errorCode: string | undefined,
  ): Promise<boolean> {
    if (!attemptId || !UUID.test(attemptId) || !status || !isKnownStatus(status)) return false;
    const code = errorCode && /^\d{1,9}$/.test(errorCode) ? Number(errorCode) : null;
    const state = notificationStateFor(status);
    // A landline is not the end of it: the fallback below decides between a call and the follow-ups.
    const landline = state === 'failed' && isLandlineCode(code);
    const messageId = attemptId.toLowerCase();
    const applied = await this.writes.write({
      messageId,
      status,
      code,
      sid: providerSid && SID.test(providerSid) ? providerSid : null,
      state: landline ? null : state,
      reason: state === 'failed' && !landline ? describeProviderCode(code, status) : null,
    });
    // Also when this report was already applied: a redelivery after the fallback failed must still run it, and
    // the fallback changes nothing twice.
    if (landline) await this.landlineFallback(messageId);
    return applied;
  }

  private async landlineFallback(messageId: string): Promise<void> {
    const rows = await this.db.query<{ id: string; state: string }[]>(LANDLINE_FALLBACK, [
      messageId,
      LANDLINE_WITHOUT_VOICE,
    ]);
    const owed = rows.filter((row) => row.state === 'pending');
    if (owed.length === 0) return;
    this.logger.log(`message ${messageId} reached a landline: calling instead (${owed.length} notice(s))`);
    await this.queue.enqueue(owed.map((row) => ({ notificationId: row.id, redelivery: 'landline' })));
  }

  private async applyOne(u: StatusUpdate): Promise<boolean> {
    const rows = await preparedQuery<{ id: string }>(this.db, 'dispatcher.status', APPLY_ONE, [
      u.messageId,
      u.status,
      u.code,
      u.sid,
      statusesBefore(u.status),
      u.state,
      u.reason,
    ])
      // Two callbacks racing to give one sid to two messages: the loser is not about this message.
      .catch((error: unknown) => {
        if ((error as { driverError?: { code?: string } }).driverError?.code === '23505') return [];
        throw error;
      });
    return rows.length > 0;
  }

  private async applyMany(updates: StatusUpdate[]): Promise<boolean[]> {
    const rows = await preparedQuery<{ ord: number }>(this.db, 'dispatcher.status-many', APPLY_MANY, [
      updates.map((u) => u.messageId),
      updates.map((u) => u.status),
      updates.map((u) => u.code),
      updates.map((u) => u.sid),
      updates.map((u) => statusesBefore(u.status).join(',')),
      updates.map((u) => u.state),
      updates.map((u) => u.reason),
    ]);
    const applied = new Set(rows.map((row) => row.ord));
    return updates.map((_, index) => applied.has(index + 1));
  }
}
