import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AccessLogService } from '@rxnotify/common/audit/access-log.service';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { NotFoundError } from '@rxnotify/common/errors';

export interface MessageView {
  id: string;
  notificationId: string;
  patientId: string;
  channel: string;
  to: string;
  providerSid: string | null;
  status: string;
  errorCode: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface NotificationView {
  id: string;
  kind: string;
  patientId: string;
  pharmacyId: string;
  fillIds: string[];
  state: string;
  reason: string | null;
  channel: string | null;
  scheduledFor: string | null;
  createdAt: string;
  updatedAt: string;
  messages: MessageView[];
}

interface NotificationRow {
  id: string;
  kind: string;
  patient_id: string;
  pharmacy_id: string;
  fill_ids: string[];
  state: string;
  reason: string | null;
  channel: string | null;
  scheduled_for: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface MessageRow {
  id: string;
  notification_id: string;
  notification_ids: string[];
  patient_id: string;
  pharmacy_id: string;
  channel: string;
  to_enc: string;
  provider_sid: string | null;
  status: string;
  error_code: number | null;
  created_at: Date;
  updated_at: Date;
}

const LIST_LIMIT = 500;

/** Read side of the outbox and the message log. Every answer about a patient is written to the access log. */
@Injectable()
export class NotificationsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keys: KeyRing,
    private readonly accessLog: AccessLogService,
  ) {}

  async get(principal: Principal, id: string, route: string): Promise<NotificationView> {
    const [view] = await this.find(principal, { id }, route);
    if (!view) throw new NotFoundError('notification');
    return view;
  }

  async list(
    principal: Principal,
    filter: { patientId?: string; state?: string; kind?: string },
    route: string,
  ) {
    return this.find(principal, filter, route);
  }

  /** Permanent failures and unreachable patients: the notifications a person must follow up by phone or at the counter. */
  async followUps(principal: Principal, route: string) {
    return this.find(principal, { state: 'failed' }, route);
  }

  async messages(
    principal: Principal,
    filter: { patientId?: string; notificationId?: string },
    route: string,
  ): Promise<MessageView[]> {
    const rows = await this.db.query<MessageRow[]>(
      `SELECT id, notification_id, notification_ids, patient_id, pharmacy_id, channel, to_enc, provider_sid, status, error_code, created_at, updated_at
       FROM messages
       WHERE ($1::uuid IS NULL OR pharmacy_id = $1) AND ($2::uuid IS NULL OR patient_id = $2)
         AND ($3::uuid IS NULL OR $3 = ANY(notification_ids))
       ORDER BY created_at DESC LIMIT ${LIST_LIMIT}`,
      [principal.pharmacyId, filter.patientId ?? null, filter.notificationId ?? null],
    );
    await this.logAccess(principal, rows, 'messages.read', route);
    return rows.map((row) => this.messageView(row));
  }

  private async find(
    principal: Principal,
    filter: { id?: string; patientId?: string; state?: string; kind?: string },
    route: string,
  ): Promise<NotificationView[]> {
    const rows = await this.db.query<NotificationRow[]>(
      `SELECT id, kind, patient_id, pharmacy_id, fill_ids, state, reason, channel, scheduled_for, created_at, updated_at
       FROM notifications
       WHERE ($1::uuid IS NULL OR pharmacy_id = $1) AND ($2::uuid IS NULL OR id = $2)
         AND ($3::uuid IS NULL OR patient_id = $3) AND ($4::text IS NULL OR state = $4) AND ($5::text IS NULL OR kind = $5)
       ORDER BY created_at DESC, id LIMIT ${LIST_LIMIT}`,
      [
        principal.pharmacyId,
        filter.id ?? null,
        filter.patientId ?? null,
        filter.state ?? null,
        filter.kind ?? null,
      ],
    );
    if (rows.length === 0) return [];
    const messages = await this.db.query<MessageRow[]>(
      `SELECT id, notification_id, notification_ids, patient_id, channel, to_enc, provider_sid, status, error_code, created_at, updated_at
       FROM messages WHERE notification_ids && $1::uuid[] ORDER BY created_at`,
      [rows.map((r) => r.id)],
    );
    await this.logAccess(principal, rows, 'notifications.read', route);
    const byNotification = new Map<string, MessageView[]>();
    for (const message of messages) {
      // A coalesced message belongs to every notification it covered.
      for (const id of message.notification_ids) {
        const list = byNotification.get(id) ?? [];
        list.push(this.messageView(message, id));
        byNotification.set(id, list);
      }
    }
    return rows.map((row) => ({
      id: row.id,
      kind: row.kind,
      patientId: row.patient_id,
      pharmacyId: row.pharmacy_id,
      fillIds: row.fill_ids,
      state: row.state,
      reason: row.reason,
      channel: row.channel,
      scheduledFor: row.scheduled_for?.toISOString() ?? null,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
      messages: byNotification.get(row.id) ?? [],
    }));
  }

  private messageView(row: MessageRow, notificationId = row.notification_id): MessageView {
    return {
      id: row.id,
      notificationId,
      patientId: row.patient_id,
      channel: row.channel,
      to: this.keys.decrypt(row.to_enc),
      providerSid: row.provider_sid,
      status: row.status,
      errorCode: row.error_code,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
  }

  /**
   * One entry per patient, under the pharmacy that holds the record (not the key's scope, which is null for an
   * all-pharmacy key): a pharmacy's auditor must see every read of its patients, whoever made it.
   */
  private async logAccess(
    principal: Principal,
    rows: { patient_id: string; pharmacy_id: string }[],
    action: string,
    route: string,
  ) {
    const byPatient = new Map(rows.map((r) => [r.patient_id, r.pharmacy_id]));
    await this.accessLog.record(
      principal,
      [...byPatient].map(([patientId, pharmacyId]) => ({ patientId, pharmacyId, action, route })),
    );
  }
}
