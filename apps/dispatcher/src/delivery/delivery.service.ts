import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource, type EntityManager } from 'typeorm';
import { Clock } from '@rxnotify/common/clock/clock';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { preparedQuery } from '@rxnotify/common/database/prepared';
import { WriteBatcher } from '@rxnotify/common/database/write-batcher';
import { Metrics } from '@rxnotify/common/metrics/metrics.service';
import {
  renderSms,
  renderVoice,
  type Language,
  type NotificationKind,
  type TemplateVars,
} from '@rxnotify/common/messaging';
import { resolveSettings, type PharmacySettings } from '@rxnotify/common/pharmacy/pharmacy-settings';
import { describeProviderCode, ProviderError, SmsProvider } from '@rxnotify/common/twilio/sms-provider';
import {
  decideDelivery,
  isStale,
  LANDLINE_WITHOUT_VOICE,
  pickupTemplateStep,
  type Channel,
  type ConsentStatus,
} from './delivery.policy';
import { SendRateLimiter } from './send-rate-limiter';
import { capRelease, earliestSend } from './timing.policy';
import { callTwiml } from './voice-twiml';

/** How long a claim holds a notification before another worker may take it over. */
export const LEASE_SECONDS = 60;
/**
 * An open attempt is settled by the provider's status callbacks, which carry its attempt id, or failing those
 * by looking it up. The lookup waits until the attempt is old enough: an unanswered create (a timeout, a crash)
 * may still be landing; an answered one (a 5xx) is finished, and its callbacks (exact, where a lookup by body is
 * ambiguous between notices that share a text) come within seconds.
 */
// A minute, not a multiple of our timeout: a request we gave up on can sit that long in a starved server's
// buffers before it is read (the chaos replicas run saw one land 43 s after it was sent).
const SETTLE_UNANSWERED_AFTER_MS = 60_000;
const SETTLE_ANSWERED_AFTER_MS = 20_000;
/** Message statuses that end an attempt without the message reaching the patient. */
const CLOSED_STATUSES = ['failed', 'undelivered', 'busy', 'no-answer', 'canceled'];
/** How long the queue pauses after the provider answers 429. */
const THROTTLE_MS = 2000;
const REMINDER_KINDS: NotificationKind[] = [
  'refill_due',
  'renewal_needed',
  'unclaimed_pickup',
  'adherence_gap',
];

export type DeliveryOutcome =
  | { outcome: 'sent'; channel: Channel; messageId: string; covered: number }
  | { outcome: 'suppressed' | 'cancelled' | 'failed'; reason: string }
  | { outcome: 'deferred'; until: string; reason: 'quiet_hours' | 'cap' }
  | { outcome: 'throttled'; retryAfterMs: number }
  | { outcome: 'skipped'; reason: 'not_claimable' | 'lease_lost' }
  /** Held by another worker's live lease: look again when it runs out (the worker may have died). */
  | { outcome: 'deferred'; until: string; reason: 'leased' | 'settling' };

/** One claimed notification with what the decision needs; patient and pharmacy columns repeat on every row. */
interface ClaimedRow {
  id: string;
  kind: NotificationKind;
  step: number | null;
  fill_count: number;
  pharmacy_id: string;
  patient_id: string;
  phone_enc: string;
  language: Language;
  line_type: 'mobile' | 'landline' | null;
  zone: string;
  pharmacy_name: string;
  sms_from: string;
  voice_from: string | null;
  callback_phone: string;
  settings: unknown;
  sms_consent: ConsentStatus;
  voice_consent: ConsentStatus;
  fill_statuses: string[] | null;
  refilled: boolean;
  return_to_stock_base: string | null;
  /** Earlier attempts for this notification that may have gone out (not known to have failed). */
  open_messages: number;
  detailed_messages: boolean;
  /** The drug, when the notice is about exactly one fill (named only to patients who opted in to details). */
  drug_name: string | null;
}

interface OpenIntent {
  id: string;
  channel: Channel;
  to_enc: string;
  from_number: string;
  body_enc: string | null;
  created_at: Date;
  notification_ids: string[];
  status: string;
  provider_sid: string | null;
}

interface Group {
  rows: ClaimedRow[];
  head: ClaimedRow;
  ids: string[];
  settings: PharmacySettings;
}

/** What a claim reads with each claimed row (`c`), its patient (`p`) and its pharmacy (`ph`). */
const CLAIMED_COLUMNS = `c.id, c.kind, c.step, cardinality(c.fill_ids) AS fill_count, c.pharmacy_id, c.patient_id,
        p.phone_enc, p.language, p.line_type, coalesce(p.timezone, ph.timezone) AS zone, p.detailed_messages,
        CASE WHEN cardinality(c.fill_ids) = 1 THEN (SELECT f.drug_name FROM fills f WHERE f.id = c.fill_ids[1]) END AS drug_name,
        ph.name AS pharmacy_name, ph.sms_from, ph.voice_from, ph.callback_phone, ph.settings,
        (SELECT status FROM consents WHERE patient_id = c.patient_id AND channel = 'sms') AS sms_consent,
        (SELECT status FROM consents WHERE patient_id = c.patient_id AND channel = 'voice') AS voice_consent,
        (SELECT array_agg(f.status) FROM fills f WHERE f.id = ANY(c.fill_ids)) AS fill_statuses,
        (SELECT to_char(min(f.ready_at AT TIME ZONE coalesce(p.timezone, ph.timezone)), 'YYYY-MM-DD')
           FROM fills f WHERE f.id = ANY(c.fill_ids)) AS return_to_stock_base,
        EXISTS (
          SELECT 1 FROM fills f JOIN fills later ON later.patient_id = f.patient_id AND later.id <> f.id
          WHERE f.id = ANY(c.fill_ids) AND later.status NOT IN ('returned_to_stock', 'cancelled')
            AND ((later.rx_number = f.rx_number AND later.fill_number > f.fill_number)
                 OR (coalesce(later.therapeutic_class, later.drug_name) = coalesce(f.therapeutic_class, f.drug_name)
                     AND later.filled_at > f.filled_at))) AS refilled,
        (SELECT count(*)::int FROM messages m WHERE m.notification_ids && ARRAY[c.id]
           AND m.status NOT IN ('failed', 'undelivered', 'busy', 'no-answer', 'canceled')) AS open_messages`;

/**
 * Claims a notification and its due siblings (same patient, kind and step) in one statement, reading consent,
 * fills and settings as of this instant. Nothing is claimed when the notification itself is not claimable
 * (already handled, or held by a live lease). $1 id, $2 worker, $3 now, $4 lease seconds.
 */
const CLAIM_ONE = `WITH target AS (
   SELECT patient_id, kind, step FROM notifications
   WHERE id = $1 AND (state IN ('pending', 'scheduled') OR (state = 'sending' AND lease_expires_at < $3))),
 claimed AS (
   UPDATE notifications n SET state = 'sending', lease_owner = $2, updated_at = $3,
          lease_expires_at = $3::timestamptz + make_interval(secs => $4)
   FROM target t
   WHERE n.patient_id = t.patient_id AND n.kind = t.kind AND n.step IS NOT DISTINCT FROM t.step
     AND (n.id = $1 OR n.kind = 'ready' OR n.due_at <= $3)
     AND (n.state IN ('pending', 'scheduled') OR (n.state = 'sending' AND n.lease_expires_at < $3))
   RETURNING n.id, n.kind, n.step, n.pharmacy_id, n.patient_id, n.fill_ids)
 SELECT ${CLAIMED_COLUMNS}
 FROM claimed c JOIN patients p ON p.id = c.patient_id JOIN pharmacies ph ON ph.id = c.pharmacy_id
 ORDER BY c.id = $1 DESC, c.id`;

/** The same for many ids ($1 an array, no id twice); each row names the requested id that led its group. */
const CLAIM_MANY = `WITH target AS (
   SELECT DISTINCT ON (n.patient_id, n.kind, n.step) n.id, n.patient_id, n.kind, n.step
   FROM unnest($1::uuid[]) WITH ORDINALITY AS r(id, ord) JOIN notifications n ON n.id = r.id
   WHERE n.state IN ('pending', 'scheduled') OR (n.state = 'sending' AND n.lease_expires_at < $3)
   ORDER BY n.patient_id, n.kind, n.step, r.ord),
 claimed AS (
   UPDATE notifications n SET state = 'sending', lease_owner = $2, updated_at = $3,
          lease_expires_at = $3::timestamptz + make_interval(secs => $4)
   FROM target t
   WHERE n.patient_id = t.patient_id AND n.kind = t.kind AND n.step IS NOT DISTINCT FROM t.step
     AND (n.id = ANY($1::uuid[]) OR n.kind = 'ready' OR n.due_at <= $3)
     AND (n.state IN ('pending', 'scheduled') OR (n.state = 'sending' AND n.lease_expires_at < $3))
   RETURNING n.id, n.kind, n.step, n.pharmacy_id, n.patient_id, n.fill_ids, t.id AS leader)
 SELECT ${CLAIMED_COLUMNS}, c.leader
 FROM claimed c JOIN patients p ON p.id = c.patient_id JOIN pharmacies ph ON ph.id = c.pharmacy_id`;

/** A send about to be attempted: written before the provider call. */
interface Intent {
  notificationId: string;
  notificationIds: string[];
  pharmacyId: string;
  patientId: string;
  channel: Channel;
  toEnc: string;
  from: string;
  bodyEnc: string;
  at: Date;
}

/**
 * A lease must have this long left for an intent to be written under it, so that a worker re-claiming at the
 * same moment (clocks a little apart) still finds the intent and settles it rather than sending again.
 */
const INTENT_LEASE_MARGIN_SECONDS = 5;

/**
 * Written before the provider call, so a crash in between leaves evidence that a send may have happened.
 * Consent is checked again here under a share lock on the consent row: an opt-out committed since the
 * claim wins (no intent, nothing sent), and one arriving now waits for this statement, then finds the
 * intent and waits for its result before it is acknowledged. The notifications must still be leased by this
 * worker ($10), under a share lock so a re-claim waits: one stalled past its lease (another worker may have
 * re-claimed) writes nothing. No row when consent no longer allows the send or the lease is lost.
 */
const INTENT_ONE = `WITH leased AS (
   SELECT id FROM notifications
   WHERE id = ANY($2::uuid[]) AND state = 'sending' AND lease_owner = $10
     AND lease_expires_at > $9::timestamptz + make_interval(secs => ${INTENT_LEASE_MARGIN_SECONDS})
   FOR SHARE),
 allowed AS (
   SELECT 1 FROM consents WHERE patient_id = $4 AND channel = $5 AND status = 'opted_in'
     AND (SELECT count(*) FROM leased) = cardinality($2::uuid[])
   FOR SHARE),
 message AS (
   INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc,
                         status, created_at, updated_at)
   SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'intent', $9, $9 FROM allowed RETURNING id, notification_id),
 attempt AS (
   INSERT INTO message_attempts (message_id, notification_id, event, status)
   SELECT id, notification_id, 'intent', 'intent' FROM message)
 SELECT id FROM message`;

/** The same for many sends (one per notification); returns each written intent's position. */
const INTENT_MANY = `WITH input AS (
   SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
     WITH ORDINALITY AS i(notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc, at, ord)),
 leased AS (
   SELECT n.id, n.lease_expires_at FROM notifications n
   WHERE n.id IN (SELECT unnest(string_to_array(notification_ids, ',')::uuid[]) FROM input)
     AND n.state = 'sending' AND n.lease_owner = $10
   FOR SHARE),
 allowed AS (
   SELECT i.* FROM input i JOIN consents c ON c.patient_id = i.patient_id AND c.channel = i.channel AND c.status = 'opted_in'
   WHERE (SELECT count(*) FROM leased l
          WHERE l.id = ANY(string_to_array(i.notification_ids, ',')::uuid[])
            AND l.lease_expires_at > i.at + make_interval(secs => ${INTENT_LEASE_MARGIN_SECONDS}))
         = cardinality(string_to_array(i.notification_ids, ','))
   FOR SHARE OF c),
 message AS (
   INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc,
                         status, created_at, updated_at)
   SELECT notification_id, string_to_array(notification_ids, ',')::uuid[], pharmacy_id, patient_id, channel, to_enc,
          from_number, body_enc, 'intent', at, at
   FROM allowed ORDER BY ord RETURNING id, notification_id),
 attempt AS (
   INSERT INTO message_attempts (message_id, notification_id, event, status)
   SELECT id, notification_id, 'intent', 'intent' FROM message)
 SELECT m.id, a.ord::int AS ord FROM message m JOIN allowed a ON a.notification_id = m.notification_id`;

/** The provider took a message: its sid and first status. */
interface Accepted {
  messageId: string;
  sid: string | null;
  status: string;
  channel: Channel;
}

/**
 * The notice's state once its attempt is answered or settled: `delivered` when the delivery report already came
 * (it may land before the answer, or while a 5xx left the attempt unsettled), else `sent`.
 */
const ANSWERED_STATE = (status: string) =>
  `CASE WHEN ${status} IN ('delivered', 'completed') THEN 'delivered' ELSE 'sent' END`;

/**
 * A status callback may have landed first (it carries the attempt id): keep whichever status is further along.
 * The message is always recorded; its notices change only while this worker still holds them (`sending`, its
 * lease): one that another worker took over, or one a callback or the reconciler already moved on (failed with
 * its reason, owed again for a call, cancelled), is theirs. $5 this worker.
 */
const ACCEPTED_ONE = `WITH message AS (
   UPDATE messages SET provider_sid = coalesce(provider_sid, $2), updated_at = now(),
          status = CASE WHEN status = 'intent' THEN $3 ELSE status END
   WHERE id = $1 RETURNING id, notification_id, notification_ids, status),
 attempt AS (
   INSERT INTO message_attempts (message_id, notification_id, event, status, provider_sid)
   SELECT id, notification_id, 'result', $3, $2 FROM message),
 notification AS (
   UPDATE notifications
      SET state = ${ANSWERED_STATE('(SELECT status FROM message)')}, channel = $4,
          reason = NULL, scheduled_for = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
   WHERE id = ANY((SELECT notification_ids FROM message)::uuid[]) AND state = 'sending' AND lease_owner = $5
   RETURNING id)
 SELECT id FROM message`;

/** The same for many messages (each once). */
const ACCEPTED_MANY = `WITH input AS (
   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS i(message_id, sid, status, channel, ord)),
 message AS (
   UPDATE messages m SET provider_sid = coalesce(m.provider_sid, i.sid), updated_at = now(),
          status = CASE WHEN m.status = 'intent' THEN i.status ELSE m.status END
   FROM input i WHERE m.id = i.message_id
   RETURNING m.id, m.notification_id, m.notification_ids, i.sid, i.status, i.channel, i.ord, m.status AS stored),
 attempt AS (
   INSERT INTO message_attempts (message_id, notification_id, event, status, provider_sid)
   SELECT id, notification_id, 'result', status, sid FROM message ORDER BY ord),
 notification AS (
   UPDATE notifications n
      SET state = ${ANSWERED_STATE('x.stored')}, channel = x.channel,
          reason = NULL, scheduled_for = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
   FROM (SELECT unnest(notification_ids) AS nid, channel, stored FROM message) x
   WHERE n.id = x.nid AND n.state = 'sending' AND n.lease_owner = $5 RETURNING n.id)
 SELECT id FROM message`;

/** A failure worth retrying with backoff (5xx, network): BullMQ tries again. */
export class RetryableDeliveryError extends Error {}

/**
 * Sends notifications. Each job claims its notification together with the same patient's other notices of the
 * same kind that are due (so a family's ready fills go out as one text), decides at send time from fresh data,
 * writes the attempt before calling the provider and the result after.
 */
@Injectable()
export class DeliveryService {
  private readonly logger = new Logger(DeliveryService.name);
  private readonly workerId = `dispatcher-${process.pid}-${randomUUID().slice(0, 8)}`;
  /** Concurrent jobs' claims are made in one statement and one commit. */
  private readonly claims = new WriteBatcher<string, ClaimedRow[]>({
    maxBatchSize: 64,
    key: (id) => id,
    many: (ids) => this.claimMany(ids),
    one: (id) => this.claimOne(id),
  });
  /** Concurrent sends' intents are written in one statement and one commit. */
  private readonly intents = new WriteBatcher<Intent, string | null>({
    maxBatchSize: 64,
    key: (i) => i.notificationId,
    many: (intents) => this.recordIntentMany(intents),
    one: (i) => this.recordIntentOne(this.db.manager, i),
  });
  /** The answers to concurrent provider calls are recorded in one statement and one commit. */
  private readonly accepted = new WriteBatcher<Accepted, void>({
    maxBatchSize: 64,
    key: (a) => a.messageId,
    many: (accepted) => this.recordAcceptedMany(accepted),
    one: (a) => this.recordAcceptedOne(a),
  });

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly keys: KeyRing,
    private readonly provider: SmsProvider,
    private readonly clock: Clock,
    private readonly rate: SendRateLimiter,
    private readonly metrics: Metrics,
  ) {}

  async deliver(notificationId: string): Promise<DeliveryOutcome> {
    const claimed = await this.claim(notificationId);
    if (claimed.length === 0) return this.whyNotClaimable(notificationId);

    // A previous attempt's answer was lost: find out from the provider before anything is sent again.
    const resolution = claimed.some((r) => r.open_messages > 0)
      ? await this.resolveOpenIntents(claimed.map((r) => r.id))
      : { settled: new Map<string, string>() };
    if ('waitUntil' in resolution) {
      return { outcome: 'deferred', until: resolution.waitUntil.toISOString(), reason: 'settling' };
    }
    const settled = resolution.settled;
    const rows = claimed.filter((row) => !settled.has(row.id));
    if (rows.length === 0)
      return {
        outcome: 'sent',
        channel: 'sms',
        messageId: [...settled.values()][0],
        covered: claimed.length,
      };

    const live: ClaimedRow[] = [];
    for (const row of rows) {
      const stale = isStale(row.kind, row.fill_statuses ?? [], row.refilled);
      if (stale) await this.finish([row.id], 'cancelled', stale);
      else live.push(row);
    }
    if (live.length === 0) return { outcome: 'cancelled', reason: 'stale' };
    const head = live.find((row) => row.id === notificationId) ?? live[0];
    const group: Group = {
      rows: live,
      head,
      ids: live.map((r) => r.id),
      settings: resolveSettings(head.settings),
    };

    const decision = decideDelivery({
      smsConsent: head.sms_consent,
      voiceConsent: head.voice_consent,
      smsCapable: head.line_type !== 'landline',
      hasVoiceNumber: true,
    });
    if (decision.action === 'suppress') return this.finish(group.ids, 'suppressed', decision.reason);
    if (decision.action === 'follow_up') return this.finish(group.ids, 'failed', decision.reason);
    return this.send(group, decision.channel);
  }

  private async send(group: Group, channel: Channel): Promise<DeliveryOutcome> {
    const { head, settings } = group;
    const reminder = REMINDER_KINDS.includes(head.kind);
    if (reminder && (settings.reminderCaps.perDay === 0 || settings.reminderCaps.perWeek === 0)) {
      return this.finish(group.ids, 'suppressed', 'reminders_disabled');
    }
    // A held notice must not spend the pharmacy's send rate: reminders are checked here too, and again under
    // the patient's lock below (another worker may have sent one since).
    const wait = reminder ? await this.reminderWait(this.db.manager, group) : this.quietWait(group);
    if (wait) return this.hold(this.db.manager, group.ids, wait.until, wait.reason);
    await this.rate.acquire(head.pharmacy_id, settings.sendRatePerSecond);

    const to = this.keys.decrypt(head.phone_enc);
    const from = channel === 'voice' ? (head.voice_from ?? head.sms_from) : head.sms_from;
    const vars = this.templateVars(group);
    const content =
      channel === 'sms'
        ? renderSms(head.kind, head.language, vars, settings.templates)
        : renderVoice(head.kind, head.language, vars);

    // Reminders: the cap check and the intent are one transaction under a per-patient lock, so two reminders
    // for the same patient on two workers cannot both slip under the cap. Ready notices are not capped.
    const intent = !reminder
      ? await this.recordIntent(this.db.manager, group, channel, to, from, content)
      : await this.db.transaction(async (tx) => {
          await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7270063))`, [
            head.patient_id,
          ]);
          const held = await this.reminderWait(tx, group);
          if (held) return this.hold(tx, group.ids, held.until, held.reason);
          return this.recordIntent(tx, group, channel, to, from, content);
        });
    if (intent === null) return this.refused(group);
    if (typeof intent !== 'string') return intent;
    return this.callProvider(group, channel, intent, to, from, content);
  }

  /**
   * No intent was written: consent was withdrawn, or this worker's lease is (nearly) out. A lease taken over
   * by another worker (this one stalled) is left to its new owner; one still ours but too short is given back
   * for a retry under a fresh claim.
   */
  private async refused(group: Group): Promise<DeliveryOutcome> {
    const [{ held, owned }] = await this.db.query<{ held: number; owned: number }[]>(
      `SELECT count(*) FILTER (WHERE lease_expires_at > $3::timestamptz + make_interval(secs => $4))::int AS held,
              count(*)::int AS owned
       FROM notifications WHERE id = ANY($1::uuid[]) AND state = 'sending' AND lease_owner = $2`,
      [group.ids, this.workerId, this.clock.now(), INTENT_LEASE_MARGIN_SECONDS],
    );
    if (held === group.ids.length) return this.finish(group.ids, 'suppressed', 'opted_out');
    if (owned === 0) {
      this.logger.warn(`notification ${group.head.id}: lease lost before sending; left to its new owner`);
      return { outcome: 'skipped', reason: 'lease_lost' };
    }
    await this.db.query(
      `WITH back AS (
         UPDATE notifications SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE id = ANY($1::uuid[]) AND state = 'sending' AND lease_owner = $2 RETURNING id)
       SELECT * FROM back`,
      [group.ids, this.workerId],
    );
    throw new RetryableDeliveryError('lease ran out before sending; will retry under a fresh claim');
  }

  private async callProvider(
    group: Group,
    channel: Channel,
    messageId: string,
    to: string,
    from: string,
    content: string,
  ): Promise<DeliveryOutcome> {
    try {
      const receipt =
        channel === 'sms'
          ? await this.provider.sendSms({
              to,
              from,
              body: content,
              statusCallback: this.callbackUrl('status', messageId),
            })
          : await this.provider.placeCall({
              to,
              from,
              twiml: this.voiceTwiml(content, group.head.language),
              statusCallback: this.callbackUrl('voice/status', messageId),
              amdStatusCallback: this.callbackUrl('voice/amd', messageId),
            });
      await this.recordAccepted(messageId, receipt.sid, receipt.status, channel);
      this.metrics.messageSent(group.head.kind, channel);
      return { outcome: 'sent', channel, messageId, covered: group.ids.length };
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      return this.recordRejected(group, channel, messageId, error);
    }
  }

  /**
   * Claims the notification and its due siblings (same patient, kind and step) in one statement, reading
   * consent, fills and settings as of this instant. Nothing is claimed when the notification itself is not
   * claimable (already handled, or held by a live lease).
   */
  private claim(notificationId: string): Promise<ClaimedRow[]> {
    return this.claims.write(notificationId);
  }

  private async claimOne(notificationId: string): Promise<ClaimedRow[]> {
    return preparedQuery<ClaimedRow>(this.db, 'dispatcher.claim', CLAIM_ONE, [
      notificationId,
      this.workerId,
      this.clock.now(),
      LEASE_SECONDS,
    ]);
  }

  /**
   * Claims for concurrent jobs in one statement. Requests for notices that belong together (same patient,
   * kind and step) make one group, led by the first of them; the others find their notice already claimed by
   * this worker, as when two jobs race for it.
   */
  private async claimMany(notificationIds: string[]): Promise<ClaimedRow[][]> {
    const rows = await preparedQuery<ClaimedRow & { leader: string }>(
      this.db,
      'dispatcher.claim-many',
      CLAIM_MANY,
      [notificationIds, this.workerId, this.clock.now(), LEASE_SECONDS],
    );
    return notificationIds.map((requested) => {
      const id = requested.toLowerCase();
      return rows
        .filter((row) => row.leader === id)
        .sort((x, y) => (x.id === id ? -1 : y.id === id ? 1 : x.id < y.id ? -1 : 1));
    });
  }

  private async whyNotClaimable(notificationId: string): Promise<DeliveryOutcome> {
    const [row] = await this.db.query<{ lease_expires_at: Date | null }[]>(
      `SELECT lease_expires_at FROM notifications WHERE id = $1 AND state = 'sending'`,
      [notificationId],
    );
    if (row?.lease_expires_at && row.lease_expires_at > this.clock.now()) {
      return {
        outcome: 'deferred',
        until: new Date(row.lease_expires_at.getTime() + 1000).toISOString(),
        reason: 'leased',
      };
    }
    return { outcome: 'skipped', reason: 'not_claimable' };
  }

  /**
   * Settles attempts whose answer was lost (a crash, a timeout or a 5xx after the request went out) before
   * anything is sent again. A message the provider's callbacks already moved past `intent` went out; one still
   * at `intent` is looked up at the provider: found, it is recorded as sent; not found, it is marked failed
   * and the notification is sent afresh. Returns the notifications now known to be sent.
   */
  private async resolveOpenIntents(
    notificationIds: string[],
  ): Promise<{ settled: Map<string, string> } | { waitUntil: Date }> {
    const settled = new Map<string, string>();
    const open = await this.db.query<(OpenIntent & { answered: boolean })[]>(
      `SELECT m.id, m.channel, m.to_enc, m.from_number, m.body_enc, m.created_at, m.notification_ids, m.status, m.provider_sid,
              EXISTS (SELECT 1 FROM message_attempts a
                      WHERE a.message_id = m.id AND a.event = 'result' AND a.status = 'unknown') AS answered
       FROM messages m
       WHERE m.notification_ids && $1::uuid[] AND m.status NOT IN ('failed', 'undelivered', 'busy', 'no-answer', 'canceled')`,
      [notificationIds],
    );
    const now = this.clock.now().getTime();
    const waits = open
      .filter((intent) => intent.status === 'intent')
      .map(
        (intent) =>
          intent.created_at.getTime() +
          (intent.answered ? SETTLE_ANSWERED_AFTER_MS : SETTLE_UNANSWERED_AFTER_MS),
      )
      .filter((until) => until > now);
    if (waits.length > 0) {
      await this.release(notificationIds);
      return { waitUntil: new Date(Math.max(...waits)) };
    }
    for (const intent of open) {
      const found =
        intent.status === 'intent'
          ? await this.lookUp(intent, notificationIds)
          : { sid: intent.provider_sid ?? '', status: intent.status };
      if ((found && (await this.claimProviderRecord(intent, found))) || (await this.settleUnfound(intent))) {
        for (const id of intent.notification_ids) settled.set(id, intent.id);
      }
    }
    return { settled };
  }

  /**
   * Attempts left at `intent` whose notifications are no longer owed (sent by a later attempt, cancelled,
   * suppressed or failed meanwhile): no job will settle them, so the reconciler does, once they are old
   * enough to have landed, by the same lookup. Returns how many it settled; a provider outage leaves the rest
   * for the next round.
   */
  async settleOrphanIntents(limit = 100): Promise<number> {
    const orphans = await this.db.query<OpenIntent[]>(
      `SELECT m.id, m.channel, m.to_enc, m.from_number, m.body_enc, m.created_at, m.notification_ids, m.status, m.provider_sid
       FROM messages m
       WHERE m.status = 'intent' AND m.created_at < $1
         AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = ANY(m.notification_ids)
                           AND n.state IN ('pending', 'scheduled', 'sending'))
       ORDER BY m.created_at LIMIT $2`,
      [new Date(this.clock.now().getTime() - SETTLE_UNANSWERED_AFTER_MS), limit],
    );
    let settled = 0;
    for (const intent of orphans) {
      let found;
      try {
        found = await this.lookUp(intent, []);
      } catch (error) {
        if (error instanceof RetryableDeliveryError) break;
        throw error;
      }
      if (!found || !(await this.claimProviderRecord(intent, found))) await this.settleUnfound(intent);
      settled++;
    }
    return settled;
  }

  /**
   * The lookup found nothing: the attempt failed, unless a status report moved it on since it was read (the
   * provider had it after all, and its report came late), in which case it is settled by what that report said.
   * True when it went out.
   */
  private async settleUnfound(intent: OpenIntent): Promise<boolean> {
    const [row] = await this.db.query<{ failed: boolean; status: string; provider_sid: string | null }[]>(
      `WITH failed AS (
         UPDATE messages SET status = 'failed', updated_at = now() WHERE id = $1 AND status = 'intent'
         RETURNING id, notification_id),
       attempt AS (
         INSERT INTO message_attempts (message_id, notification_id, event, status)
         SELECT id, notification_id, 'result', 'not_found_at_provider' FROM failed)
       SELECT EXISTS (SELECT 1 FROM failed) AS failed, m.status, m.provider_sid FROM messages m WHERE m.id = $1`,
      [intent.id],
    );
    if (!row || row.failed || CLOSED_STATUSES.includes(row.status)) return false;
    return this.claimProviderRecord(intent, { sid: row.provider_sid ?? '', status: row.status });
  }

  /** Records the provider's message as this attempt's; false when another attempt took that sid first. */
  private async claimProviderRecord(
    intent: OpenIntent,
    found: { sid: string; status: string },
  ): Promise<boolean> {
    try {
      await this.recordAccepted(intent.id, found.sid || null, found.status, intent.channel);
      return true;
    } catch (error) {
      if ((error as { driverError?: { code?: string } }).driverError?.code === '23505') return false;
      throw error;
    }
  }

  /** The provider's record of this attempt: the oldest candidate no other message has already claimed as its own. */
  private async lookUp(intent: OpenIntent, claimed: string[]) {
    let candidates;
    try {
      candidates = await this.provider.findSent({
        channel: intent.channel,
        to: this.keys.decrypt(intent.to_enc),
        from: intent.from_number,
        since: intent.created_at,
        body:
          intent.channel === 'sms' ? (this.keys.decryptOptional(intent.body_enc) ?? undefined) : undefined,
      });
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      await this.release(claimed);
      throw new RetryableDeliveryError('provider unreachable while settling an earlier attempt');
    }
    if (candidates.length === 0) return null;
    // Its own sid is not "taken": a status report may have given it to this very message since it was read.
    const taken = await this.db.query<{ provider_sid: string }[]>(
      `SELECT provider_sid FROM messages WHERE provider_sid = ANY($1::text[]) AND id <> $2`,
      [candidates.map((c) => c.sid), intent.id],
    );
    const known = new Set(taken.map((row) => row.provider_sid));
    return candidates.find((candidate) => !known.has(candidate.sid)) ?? null;
  }

  private quietWait(group: Group): { until: Date; reason: 'quiet_hours' } | null {
    const until = earliestSend(this.clock.now(), group.head.zone, group.settings.quietHours, null);
    return until ? { until, reason: 'quiet_hours' } : null;
  }

  /** When a reminder may go, if not now: the later of its caps' release and the quiet hours. */
  private async reminderWait(
    tx: EntityManager,
    group: Group,
  ): Promise<{ until: Date; reason: 'cap' | 'quiet_hours' } | null> {
    const sent = await this.recentReminderSends(tx, group.head.patient_id);
    const now = this.clock.now();
    const capFree = capRelease(now, sent, group.settings.reminderCaps);
    const until = earliestSend(now, group.head.zone, group.settings.quietHours, capFree);
    return until ? { until, reason: capFree ? 'cap' : 'quiet_hours' } : null;
  }

  /** Reminder sends to the patient in the last week that count against the caps (anything not known failed). */
  private async recentReminderSends(tx: EntityManager, patientId: string): Promise<Date[]> {
    const rows = await tx.query<{ created_at: Date }[]>(
      `SELECT m.created_at FROM messages m JOIN notifications n ON n.id = m.notification_id
       WHERE m.patient_id = $1 AND m.created_at > $2::timestamptz - interval '7 days'
         AND m.status NOT IN ('failed', 'undelivered', 'busy', 'no-answer', 'canceled')
         AND n.kind IN ('refill_due', 'renewal_needed', 'unclaimed_pickup', 'adherence_gap')`,
      [patientId, this.clock.now()],
    );
    return rows.map((r) => r.created_at);
  }

  /** Holds claimed notices until `until`; only while this worker still holds them (a stalled worker may not). */
  private async hold(
    manager: EntityManager,
    ids: string[],
    until: Date,
    reason: 'quiet_hours' | 'cap',
  ): Promise<DeliveryOutcome> {
    await manager.query(
      `WITH held AS (
         UPDATE notifications SET state = 'scheduled', scheduled_for = $2, reason = $3, lease_owner = NULL,
                lease_expires_at = NULL, updated_at = $4
         WHERE id = ANY($1::uuid[]) AND state = 'sending' AND lease_owner = $5 RETURNING id)
       SELECT * FROM held`,
      [ids, until, reason, this.clock.now(), this.workerId],
    );
    return { outcome: 'deferred', until: until.toISOString(), reason };
  }

  /** Ends claimed notices without a send; only while this worker still holds them. */
  private async finish(
    ids: string[],
    state: 'suppressed' | 'cancelled' | 'failed',
    reason: string,
  ): Promise<DeliveryOutcome> {
    await this.db.query(
      `WITH done AS (
         UPDATE notifications SET state = $2, reason = $3, lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
         WHERE id = ANY($1::uuid[]) AND state = 'sending' AND lease_owner = $5 RETURNING id)
       SELECT * FROM done`,
      [ids, state, reason, this.clock.now(), this.workerId],
    );
    if (state === 'suppressed') this.metrics.suppressed(reason);
    return { outcome: state, reason };
  }

  /** Gives notifications back for a retry. */
  private async release(ids: string[]): Promise<void> {
    await this.db.query(
      `WITH back AS (
         UPDATE notifications SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE id = ANY($1::uuid[]) AND state = 'sending' RETURNING id)
       SELECT * FROM back`,
      [ids],
    );
  }

  /**
   * Written before the provider call, so a crash in between leaves evidence that a send may have happened.
   * Consent is checked again here under a share lock on the consent row: an opt-out committed since the
   * claim wins (no intent, nothing sent), and one arriving now waits for this statement, then finds the
   * intent and waits for its result before it is acknowledged. Null when consent no longer allows the send.
   */
  private recordIntent(
    tx: EntityManager,
    group: Group,
    channel: Channel,
    to: string,
    from: string,
    content: string,
  ): Promise<string | null> {
    const intent: Intent = {
      notificationId: group.head.id,
      notificationIds: group.ids,
      pharmacyId: group.head.pharmacy_id,
      patientId: group.head.patient_id,
      channel,
      toEnc: this.keys.encrypt(to),
      from,
      bodyEnc: this.keys.encrypt(content),
      at: this.clock.now(),
    };
    // Outside a transaction (ready notices) batched with concurrent ones; inside one (reminders) on its connection.
    return tx === this.db.manager ? this.intents.write(intent) : this.recordIntentOne(tx, intent);
  }

  private async recordIntentOne(tx: EntityManager, i: Intent): Promise<string | null> {
    const values = [
      i.notificationId,
      i.notificationIds,
      i.pharmacyId,
      i.patientId,
      i.channel,
      i.toEnc,
      i.from,
      i.bodyEnc,
      i.at,
      this.workerId,
    ];
    const [row] =
      tx === this.db.manager
        ? await preparedQuery<{ id: string }>(this.db, 'dispatcher.intent', INTENT_ONE, values)
        : await tx.query<{ id: string }[]>(INTENT_ONE, values);
    return row?.id ?? null;
  }

  private async recordIntentMany(intents: Intent[]): Promise<(string | null)[]> {
    const rows = await preparedQuery<{ id: string; ord: number }>(
      this.db,
      'dispatcher.intent-many',
      INTENT_MANY,
      [
        intents.map((i) => i.notificationId),
        intents.map((i) => i.notificationIds.join(',')),
        intents.map((i) => i.pharmacyId),
        intents.map((i) => i.patientId),
        intents.map((i) => i.channel),
        intents.map((i) => i.toEnc),
        intents.map((i) => i.from),
        intents.map((i) => i.bodyEnc),
        intents.map((i) => i.at),
        this.workerId,
      ],
    );
    const byOrd = new Map(rows.map((row) => [row.ord, row.id]));
    return intents.map((_, index) => byOrd.get(index + 1) ?? null);
  }

  private recordAccepted(messageId: string, sid: string | null, status: string, channel: Channel) {
    return this.accepted.write({ messageId, sid, status: providerStatus(status), channel });
  }

  private async recordAcceptedOne(a: Accepted): Promise<void> {
    await preparedQuery(this.db, 'dispatcher.accepted', ACCEPTED_ONE, [
      a.messageId,
      a.sid,
      a.status,
      a.channel,
      this.workerId,
    ]);
  }

  private async recordAcceptedMany(accepted: Accepted[]): Promise<void[]> {
    await preparedQuery(this.db, 'dispatcher.accepted-many', ACCEPTED_MANY, [
      accepted.map((a) => a.messageId),
      accepted.map((a) => a.sid),
      accepted.map((a) => a.status),
      accepted.map((a) => a.channel),
      this.workerId,
    ]);
    return accepted.map(() => undefined);
  }

  private async recordAttempt(
    messageId: string,
    status: 'failed' | 'intent',
    errorCode: number | null,
    outcome: string,
  ): Promise<void> {
    await this.db.query(
      `WITH message AS (
         UPDATE messages SET status = $2, error_code = coalesce($3, error_code), updated_at = now() WHERE id = $1
         RETURNING id, notification_id),
       attempt AS (
         INSERT INTO message_attempts (message_id, notification_id, event, status, error_code)
         SELECT id, notification_id, 'result', $4, $3 FROM message)
       SELECT id FROM message`,
      [messageId, status, errorCode, outcome],
    );
  }

  private async recordRejected(
    group: Group,
    channel: Channel,
    messageId: string,
    error: ProviderError,
  ): Promise<DeliveryOutcome> {
    this.metrics.message(group.head.kind, channel, error.kind === 'retryable' ? 'retried' : 'failed');
    if (error.kind === 'retryable') {
      if (error.httpStatus === 429) {
        // Refused outright: nothing went out. Pause the queue rather than burn this job's attempts.
        await this.recordAttempt(messageId, 'failed', 429, 'throttled');
        await this.release(group.ids);
        return { outcome: 'throttled', retryAfterMs: THROTTLE_MS };
      }
      // A 5xx or a lost connection may still have been accepted: the intent stays open for the retry to settle.
      // For the audit trail: 'unknown' the provider answered (a 5xx), 'no_answer' it did not (a timeout).
      await this.recordAttempt(
        messageId,
        'intent',
        error.code,
        error.httpStatus === null ? 'no_answer' : 'unknown',
      );
      await this.release(group.ids);
      throw new RetryableDeliveryError(`provider answered ${error.httpStatus ?? 'nothing'}; will retry`);
    }
    await this.recordAttempt(messageId, 'failed', error.code, 'failed');
    if (error.kind === 'opted_out') {
      await this.recordCarrierOptOut(group.head);
      return this.finish(group.ids, 'suppressed', 'opted_out');
    }
    if (error.kind === 'not_mobile' && channel === 'sms') {
      await this.db.query(`UPDATE patients SET line_type = 'landline' WHERE id = $1`, [
        group.head.patient_id,
      ]);
      if (group.head.voice_consent === 'opted_in')
        return this.send({ ...group, head: { ...group.head, line_type: 'landline' } }, 'voice');
      return this.finish(group.ids, 'failed', LANDLINE_WITHOUT_VOICE);
    }
    this.logger.warn(`notification ${group.head.id} failed permanently (code ${error.code ?? 'none'})`);
    return this.finish(group.ids, 'failed', describeProviderCode(error.code));
  }

  /** Twilio's 21610: the number replied STOP at the carrier. Recorded as an SMS opt-out so nothing else is tried. */
  private async recordCarrierOptOut(head: ClaimedRow): Promise<void> {
    this.metrics.consentChanged('carrier', 'opted_out');
    await this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO consents (patient_id, channel, status, source, updated_at) VALUES ($1, 'sms', 'opted_out', 'carrier', now())
         ON CONFLICT (patient_id, channel) DO UPDATE SET status = 'opted_out', source = 'carrier', updated_at = now()`,
        [head.patient_id],
      );
      await tx.query(
        `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor)
         VALUES ($1, $2, 'sms', 'opted_out', 'carrier', 'twilio:21610')`,
        [head.patient_id, head.pharmacy_id],
      );
    });
  }

  private templateVars(group: Group): TemplateVars {
    const { head, settings } = group;
    const vars: TemplateVars = {
      pharmacyName: head.pharmacy_name,
      callbackPhone: head.callback_phone,
      count: Math.min(
        99,
        group.rows.reduce((sum, row) => sum + Math.max(1, row.fill_count), 0),
      ),
    };
    // By default no drug name leaves the pharmacy; a patient who opted in to details gets it on single-fill notices.
    if (head.detailed_messages && vars.count === 1 && head.drug_name) vars.drugName = head.drug_name;
    if (head.kind === 'unclaimed_pickup' && head.step) {
      vars.step = pickupTemplateStep(head.step, settings.pickupReminderDays.length);
      if (vars.step === 3 && head.return_to_stock_base) {
        vars.returnToStockDate = formatLocalDate(
          addDays(head.return_to_stock_base, settings.returnToStockDay),
          head.language,
        );
      }
    }
    return vars;
  }

  private callbackUrl(path: 'status' | 'voice/status' | 'voice/amd', messageId: string): string {
    return `${this.config.publicUrls.dispatcher}/webhooks/twilio/${path}?attemptId=${messageId}`;
  }

  private voiceTwiml(text: string, language: Language): string {
    return callTwiml(text, language, `${this.config.publicUrls.consentApi}/webhooks/twilio/voice/gather`);
  }
}

function providerStatus(status: string): string {
  return status === 'accepted' ? 'queued' : status;
}

/** A calendar date (YYYY-MM-DD) plus whole days, without time zones getting involved. */
function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** "Nov 30" / "30 nov": short enough for one segment, and GSM-7. */
function formatLocalDate(date: string, language: Language): string {
  return new Intl.DateTimeFormat(language === 'es' ? 'es-US' : 'en-US', {
    month: 'short',
    day: 'numeric',
    timeZone: 'UTC',
  })
    .format(new Date(`${date}T00:00:00Z`))
    .replace('.', '');
}
