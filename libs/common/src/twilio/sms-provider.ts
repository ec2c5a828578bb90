/**
 * How long a request to the provider may take before we give up on its answer. Shorter than the 15 s Twilio
 * waits for a webhook's answer, so that an opt-out can wait out every send in flight and still answer in time.
 */
export const PROVIDER_REQUEST_TIMEOUT_MS = 10_000;

/** Twilio treats a webhook that has not answered within 15 s as failed (error 11200). */
export const TWILIO_WEBHOOK_TIMEOUT_MS = 15_000;

/** The edge to the messaging provider. Twilio in production; the sandbox speaks the same wire format. */
export abstract class SmsProvider {
  abstract sendSms(message: OutboundSms): Promise<ProviderReceipt>;
  abstract placeCall(call: OutboundCall): Promise<ProviderReceipt>;
  /**
   * What may be an attempt whose answer was lost (a 5xx or a timeout after the request went out): the messages
   * or calls to `to` from `from` since `since` (with this body, for texts), oldest first. Several notices to one
   * patient can share a body, so the caller decides which candidate, if any, is its own.
   */
  abstract findSent(query: SentQuery): Promise<ProviderReceipt[]>;
  /** Replaces what a call in progress plays (a voicemail gets the message without the keypad menu). */
  abstract updateCall(sid: string, twiml: string): Promise<void>;
}

export interface SentQuery {
  channel: 'sms' | 'voice';
  to: string;
  from: string;
  since: Date;
  body?: string;
}

export interface OutboundSms {
  to: string;
  from: string;
  body: string;
  statusCallback: string;
}

export interface OutboundCall {
  to: string;
  from: string;
  twiml: string;
  statusCallback: string;
  /** Where the answering-machine verdict (AnsweredBy) is posted while the call plays. */
  amdStatusCallback: string;
}

export interface ProviderReceipt {
  sid: string;
  status: string;
}

/**
 * Why a send failed, decided from Twilio's answer:
 * - retryable: 429, 5xx, network: try again later;
 * - opted_out: 21610, the recipient replied STOP at the carrier;
 * - not_mobile: 21614 / 30006, a landline (voice may still reach it);
 * - permanent: anything else that will not succeed on retry (21211 invalid number, ...).
 */
export type ProviderFailureKind = 'retryable' | 'opted_out' | 'not_mobile' | 'permanent';

export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderFailureKind,
    readonly code: number | null,
    readonly httpStatus: number | null,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

const PERMANENT_REASONS: Record<number, string> = {
  21211: 'the number is not a valid phone number',
  21217: 'the number does not appear to be a valid phone number',
  21408: 'the destination region is not enabled',
  21606: 'the sender number cannot send texts',
  21610: 'the recipient opted out at the carrier (replied STOP)',
  21612: 'the number cannot be reached from this sender',
  21614: 'the number is not a mobile number (landline)',
  30003: 'the phone is switched off or out of reach',
  30004: 'the carrier or the recipient blocked the message',
  30005: 'the number does not exist or is no longer in service',
  30006: 'the number is a landline or unreachable carrier',
  30007: 'the carrier filtered the message as spam',
  30008: 'the carrier could not deliver the message (unknown error)',
};

/** A final provider status without a known error code, in words. */
const STATUS_REASONS: Record<string, string> = {
  busy: 'the line was busy',
  'no-answer': 'nobody answered the call',
  canceled: 'the call was canceled before it connected',
  failed: 'the call or text could not be placed',
  undelivered: 'the carrier could not deliver the text',
};

/** Why a send failed, in words staff can act on: by the error code when known, else by the final status. */
export function describeProviderCode(code: number | null, status?: string): string {
  const known = code !== null ? PERMANENT_REASONS[code] : undefined;
  if (known) return known;
  const byStatus = status !== undefined ? STATUS_REASONS[status] : undefined;
  if (byStatus) return code === null ? byStatus : `${byStatus} (error ${code})`;
  return code === null
    ? 'the provider refused the request'
    : `the provider refused the request (error ${code})`;
}

/** The number is not a mobile (a landline, or a carrier that takes no texts): 21614 at send, 30006 in a callback. */
export function isLandlineCode(code: number | null): boolean {
  return code === 21614 || code === 30006;
}

export function classifyProviderFailure(httpStatus: number | null, code: number | null): ProviderFailureKind {
  if (code === 21610) return 'opted_out';
  if (isLandlineCode(code)) return 'not_mobile';
  if (httpStatus === null || httpStatus === 429 || httpStatus >= 500 || code === 20429) return 'retryable';
  return 'permanent';
}
