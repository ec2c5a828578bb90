import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import type { Language } from '@rxnotify/common/messaging';
import { toE164 } from '@rxnotify/common/phone/phone';
import { ensureNoSendsInFlight } from '@rxnotify/common/consent/in-flight';
import { DataSource } from 'typeorm';
import { ConsentService } from '../consent/consent.service';

export interface GatherInput {
  callSid: string;
  /** The pharmacy's number: the call is outbound. */
  from: string;
  /** The patient's number. */
  to: string;
  digits: string;
  /** Whether the menu was already repeated once. */
  retry: boolean;
}

export type GatherOutcome =
  | { kind: 'opted_out'; language: Language; pharmacyName: string }
  | { kind: 'repeat_menu'; language: Language }
  | { kind: 'goodbye'; language: Language };

const OPT_OUT_DIGIT = '9';

/** The keypress answer of an automated call: 9 opts the called patient out of voice. */
@Injectable()
export class VoiceGatherService {
  private readonly logger = new Logger(VoiceGatherService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keyRing: KeyRing,
    private readonly consent: ConsentService,
  ) {}

  async gather(input: GatherInput): Promise<GatherOutcome> {
    const pharmacyNumber = toE164(input.from);
    const patientNumber = toE164(input.to);
    const patients =
      pharmacyNumber && patientNumber
        ? await this.db.query<{ id: string; language: Language; pharmacy_name: string }[]>(
            `SELECT pt.id, pt.language, ph.name AS pharmacy_name
             FROM patients pt JOIN pharmacies ph ON ph.id = pt.pharmacy_id
             WHERE (ph.voice_from = $1 OR ph.sms_from = $1) AND pt.phone_index = $2
             ORDER BY pt.created_at, pt.id`,
            [pharmacyNumber, this.keyRing.blindIndex(patientNumber)],
          )
        : [];
    const language = patients.length > 0 && patients.every((p) => p.language === 'es') ? 'es' : 'en';

    if (input.digits.trim() !== OPT_OUT_DIGIT) {
      this.logger.log(
        `gather ${input.callSid}: digit other than ${OPT_OUT_DIGIT}${input.retry ? ' on retry, ending' : ', repeating the menu'}`,
      );
      return input.retry ? { kind: 'goodbye', language } : { kind: 'repeat_menu', language };
    }
    if (patients.length === 0) {
      this.logger.warn(`gather ${input.callSid}: opt-out keypress matched no patient`);
      return { kind: 'goodbye', language };
    }
    // Idempotent without deduplication: a second 9 finds the status already opted_out and records nothing.
    const changed = await this.db.transaction((manager) =>
      this.consent.recordChange(manager, {
        patientIds: patients.map((p) => p.id),
        channel: 'voice',
        status: 'opted_out',
        source: 'voice_keypress',
        actor: `twilio:${input.callSid}`,
      }),
    );
    try {
      await ensureNoSendsInFlight(
        this.db,
        patients.map((p) => p.id),
        'voice',
      );
    } catch (error) {
      this.logger.warn(`gather ${input.callSid}: opt-out committed, calls still in flight; answering 503`);
      throw error;
    }
    this.logger.log(
      `gather ${input.callSid}: voice opt-out, ${patients.length} patient(s), ${changed.length} change(s)`,
    );
    return { kind: 'opted_out', language, pharmacyName: patients[0].pharmacy_name };
  }
}
