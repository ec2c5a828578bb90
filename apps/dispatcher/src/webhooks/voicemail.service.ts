import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import type { Language } from '@rxnotify/common/messaging';
import { ProviderError, SmsProvider } from '@rxnotify/common/twilio/sms-provider';
import { voicemailTwiml } from '../delivery/voice-twiml';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CALL_SID = /^CA[0-9a-f]{32}$/i;

/** Twilio's `AnsweredBy` values (asynchronous answering-machine detection with DetectMessageEnd). */
const VERDICTS = new Set([
  'human',
  'machine_start',
  'machine_end_beep',
  'machine_end_silence',
  'machine_end_other',
  'fax',
  'unknown',
]);

/**
 * The verdict joins the call's attempt log once (Twilio may post it again: a unique index keeps the first), for a
 * call of ours only: the message is a call and its sid, when known, is this one.
 */
const LOG_VERDICT = `INSERT INTO message_attempts (message_id, notification_id, event, status, provider_sid)
   SELECT m.id, m.notification_id, 'answered_by', $3, $2 FROM messages m
   WHERE m.id = $1 AND m.channel = 'voice' AND (m.provider_sid IS NULL OR m.provider_sid = $2)
   ON CONFLICT (message_id) WHERE event = 'answered_by' DO NOTHING`;

/** What became of an answering-machine verdict: `retry` asks Twilio to post it again. */
export type AmdOutcome = 'voicemail' | 'ignored' | 'retry';

/**
 * Twilio's asynchronous answering-machine verdict, logged with the call's attempts. A person hears the inline
 * TwiML (message, then the press-9 menu); a voicemail (`machine_end_*`, once the greeting ended) gets the
 * message alone.
 */
@Injectable()
export class VoicemailService {
  private readonly logger = new Logger(VoicemailService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keys: KeyRing,
    private readonly provider: SmsProvider,
  ) {}

  async answered(
    attemptId: string | undefined,
    callSid: string | undefined,
    answeredBy: string | undefined,
  ): Promise<AmdOutcome> {
    if (!attemptId || !UUID.test(attemptId) || !callSid || !CALL_SID.test(callSid)) return 'ignored';
    if (typeof answeredBy !== 'string' || !VERDICTS.has(answeredBy)) return 'ignored';
    await this.db.query(LOG_VERDICT, [attemptId.toLowerCase(), callSid, answeredBy]);
    if (!answeredBy.startsWith('machine_end_')) return 'ignored';
    // The verdict may come before the create call returned (no sid yet); a sid of another message is not ours.
    const [call] = await this.db.query<{ body_enc: string | null; language: Language }[]>(
      `SELECT m.body_enc, p.language FROM messages m JOIN patients p ON p.id = m.patient_id
       WHERE m.id = $1 AND m.channel = 'voice' AND (m.provider_sid IS NULL OR m.provider_sid = $2)`,
      [attemptId.toLowerCase(), callSid],
    );
    const text = call ? this.keys.decryptOptional(call.body_enc) : null;
    if (!call || !text) return 'ignored';
    try {
      await this.provider.updateCall(callSid, voicemailTwiml(text, call.language));
      return 'voicemail';
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      if (error.kind === 'retryable') return 'retry';
      // Typically the call already ended (21220): the voicemail heard the menu, nothing left to change.
      this.logger.warn(`call ${callSid}: voicemail update refused (code ${error.code ?? 'none'})`);
      return 'ignored';
    }
  }
}
