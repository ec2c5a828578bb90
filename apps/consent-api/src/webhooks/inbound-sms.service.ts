import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import {
  parseInboundKeyword,
  renderConfirmation,
  type InboundIntent,
  type Language,
} from '@rxnotify/common/messaging';
import { toE164 } from '@rxnotify/common/phone/phone';
import { ensureNoSendsInFlight } from '@rxnotify/common/consent/in-flight';
import { DataSource } from 'typeorm';
import { ConsentService } from '../consent/consent.service';

export interface InboundSms {
  messageSid: string;
  from: string;
  to: string;
  body: string;
}

interface MatchedPatient {
  id: string;
  pharmacy_id: string;
  language: Language;
  pharmacy_name: string;
  callback_phone: string;
}

/**
 * A patient's text to a pharmacy number. Keywords change SMS consent for every patient of that pharmacy
 * with the sender's phone (a family often shares one), committed before Twilio gets its answer.
 */
@Injectable()
export class InboundSmsService {
  private readonly logger = new Logger(InboundSmsService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keyRing: KeyRing,
    private readonly consent: ConsentService,
  ) {}

  /** The reply to send back, or null for none. */
  async receive(sms: InboundSms): Promise<string | null> {
    const intent = parseInboundKeyword(sms.body);
    const pharmacyNumber = toE164(sms.to);
    const senderNumber = toE164(sms.from);
    // Numbers are unique per pharmacy through the API; should two share one anyway, a STOP reaches both.
    const pharmacyIds = pharmacyNumber
      ? (
          await this.db.query<{ id: string }[]>(
            `SELECT id FROM pharmacies WHERE sms_from = $1 ORDER BY created_at`,
            [pharmacyNumber],
          )
        ).map((row) => row.id)
      : [];
    const patients =
      pharmacyIds.length > 0 && senderNumber
        ? await this.db.query<MatchedPatient[]>(
            `SELECT pt.id, pt.pharmacy_id, pt.language, ph.name AS pharmacy_name, ph.callback_phone
             FROM patients pt JOIN pharmacies ph ON ph.id = pt.pharmacy_id
             WHERE pt.pharmacy_id = ANY($1::uuid[]) AND pt.phone_index = $2 ORDER BY pt.created_at, pt.id`,
            [pharmacyIds, this.keyRing.blindIndex(senderNumber)],
          )
        : [];
    const pharmacyId = patients[0]?.pharmacy_id ?? pharmacyIds[0] ?? null;

    // An opt-out is answered only once no text to the patient is still in flight (below); anything else at once.
    const answerNow = intent !== 'opt_out';
    const changed = await this.db.transaction(async (manager) => {
      const fresh = await manager.query<{ message_sid: string }[]>(
        `INSERT INTO inbound_messages (message_sid, pharmacy_id, intent, patients_matched, answered_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $5::boolean THEN now() END)
         ON CONFLICT (message_sid) DO NOTHING RETURNING message_sid`,
        [sms.messageSid, pharmacyId, intent, patients.length, answerNow],
      );
      if (fresh.length === 0) return null;
      if (intent !== 'opt_out' && intent !== 'opt_in') return [];
      return this.consent.recordChange(manager, {
        patientIds: patients.map((p) => p.id),
        channel: 'sms',
        status: intent === 'opt_out' ? 'opted_out' : 'opted_in',
        source: 'sms_keyword',
        actor: `twilio:${sms.messageSid}`,
      });
    });

    // A redelivery of an opt-out may follow our 503: it waits for sends in flight again before it is answered.
    if (intent === 'opt_out') await this.settleInFlight(sms.messageSid, patients);
    // The confirmation goes out once: with the first answer of 200, which for an opt-out may be a redelivery's
    // (the patient got nothing with our 503). Every later delivery of the same text gets an empty reply.
    const answering = (changed !== null && answerNow) || (await this.claimAnswer(sms.messageSid));
    if (!answering) {
      this.logger.log(`inbound ${sms.messageSid}: duplicate delivery, ignored`);
      return null;
    }
    this.logger.log(
      changed === null
        ? `inbound ${sms.messageSid}: redelivery of a text not yet answered, answering it now`
        : `inbound ${sms.messageSid}: pharmacy ${pharmacyId ?? 'unknown'}, intent ${intent}, ` +
            `${patients.length} patient(s) matched, ${changed.length} consent change(s)`,
    );
    return patients.length > 0 ? reply(intent, patients) : null;
  }

  /** Marks the text answered; false when some delivery of it already was. */
  private async claimAnswer(messageSid: string): Promise<boolean> {
    const rows = await this.db.query<{ message_sid: string }[]>(
      // In a CTE: TypeORM answers a bare UPDATE with [rows, count] rather than the rows.
      `WITH claimed AS (
         UPDATE inbound_messages SET answered_at = now() WHERE message_sid = $1 AND answered_at IS NULL
         RETURNING message_sid)
       SELECT message_sid FROM claimed`,
      [messageSid],
    );
    return rows.length > 0;
  }

  private async settleInFlight(messageSid: string, patients: MatchedPatient[]): Promise<void> {
    try {
      await ensureNoSendsInFlight(
        this.db,
        patients.map((p) => p.id),
        'sms',
      );
    } catch (error) {
      this.logger.warn(`inbound ${messageSid}: opt-out committed, sends still in flight; answering 503`);
      throw error;
    }
  }
}

function reply(intent: InboundIntent, patients: MatchedPatient[]): string | null {
  if (intent === 'none') return null;
  const [first] = patients;
  // One reply for the whole phone: in the patients' language when they agree, else English.
  const language = patients.every((p) => p.language === first.language) ? first.language : 'en';
  return renderConfirmation(intent, language, {
    pharmacyName: first.pharmacy_name,
    callbackPhone: first.callback_phone,
  });
}
