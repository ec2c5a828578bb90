import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { describeProviderCode } from '@rxnotify/common/twilio/sms-provider';
import { isKnownStatus, notificationStateFor, statusesBefore } from '../delivery/delivery.policy';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Twilio sids: two letters and 32 hex digits (SM…, MM…, CA…). */
const SID = /^[A-Z]{2}[0-9a-f]{32}$/i;

@Injectable()
export class StatusService {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Moves a message forward; a status that is not further along (a late "sent" after "delivered") is ignored,
   * so final statuses are sticky and redelivered callbacks are harmless.
   */
  async apply(
    attemptId: string | undefined,
    status: string | undefined,
    providerSid: string | undefined,
    errorCode: string | undefined,
  ): Promise<boolean> {
    if (!attemptId || !UUID.test(attemptId) || !status || !isKnownStatus(status)) return false;
    const sid = providerSid && SID.test(providerSid) ? providerSid : null;
    const code = errorCode && /^\d{1,9}$/.test(errorCode) ? Number(errorCode) : null;
    const state = notificationStateFor(status);
    const rows = await this.db
      .query<{ id: string }[]>(
        `WITH message AS (
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
       SELECT id FROM message`,
        [
          attemptId,
          status,
          code,
          sid,
          statusesBefore(status),
          state,
          state === 'failed' ? describeProviderCode(code) : null,
        ],
      )
      // Two callbacks racing to give one sid to two messages: the loser is not about this message.
      .catch((error: unknown) => {
        if ((error as { driverError?: { code?: string } }).driverError?.code === '23505') return [];
        throw error;
      });
    return rows.length > 0;
  }
}
