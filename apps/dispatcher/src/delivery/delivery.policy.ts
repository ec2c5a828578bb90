export type Channel = 'sms' | 'voice';
export type ConsentStatus = 'opted_in' | 'opted_out' | null;

/** What the channel decision needs, read at the moment the notification is claimed. */
export interface ConsentContext {
  smsConsent: ConsentStatus;
  voiceConsent: ConsentStatus;
  /** False once the provider told us the number is a landline. */
  smsCapable: boolean;
  hasVoiceNumber: boolean;
}

/** Why a notice to a landline whose owner did not consent to calls needs a person (GET /v1/follow-ups). */
export const LANDLINE_WITHOUT_VOICE = 'landline without voice consent: call the patient';

export type ChannelDecision =
  | { action: 'send'; channel: Channel }
  | { action: 'suppress'; reason: 'no_consent' | 'opted_out' }
  /** Nothing can be sent but the patient asked to hear from us: a person follows up (GET /v1/follow-ups). */
  | { action: 'follow_up'; reason: string };

/** The fill statuses under which a notice of this kind still makes sense. */
const STILL_RELEVANT: Record<string, string[]> = {
  ready: ['ready'],
  unclaimed_pickup: ['ready'],
  refill_due: ['picked_up'],
  renewal_needed: ['picked_up'],
  adherence_gap: ['picked_up'],
};
const REFILL_KINDS = ['refill_due', 'renewal_needed', 'adherence_gap'];

/**
 * Why a notice no longer makes sense (a fill picked up, returned or refilled since it was made), or null.
 * A stale notice is cancelled, never sent.
 */
export function isStale(kind: string, fillStatuses: string[], refilled: boolean): string | null {
  const relevant = STILL_RELEVANT[kind] ?? [];
  if (fillStatuses.length === 0) return 'stale:no_fill';
  const stale = fillStatuses.find((status) => !relevant.includes(status));
  if (stale !== undefined) return `stale:${stale}`;
  if (refilled && REFILL_KINDS.includes(kind)) return 'stale:refilled';
  return null;
}

/**
 * SMS when the patient opted in to texts and the number takes them; a call when calls are consented and
 * texts are not possible; a known landline whose owner wants texts and never refused calls goes to staff;
 * nothing without consent ("unknown" means no).
 */
export function decideDelivery(context: ConsentContext): ChannelDecision {
  if (context.smsConsent === 'opted_in' && context.smsCapable) return { action: 'send', channel: 'sms' };
  if (context.voiceConsent === 'opted_in' && context.hasVoiceNumber)
    return { action: 'send', channel: 'voice' };
  // A patient who pressed 9 asked for no calls: nobody is told to call them.
  if (context.smsConsent === 'opted_in' && context.voiceConsent !== 'opted_out')
    return { action: 'follow_up', reason: LANDLINE_WITHOUT_VOICE };
  if (context.smsConsent === 'opted_out' || context.voiceConsent === 'opted_out') {
    return { action: 'suppress', reason: 'opted_out' };
  }
  return { action: 'suppress', reason: 'no_consent' };
}

/**
 * The template step of an unclaimed-pickup reminder: the last configured reminder is always the final one
 * (step 3, which names the return-to-stock date), whatever the pharmacy's cadence.
 */
export function pickupTemplateStep(step: number, reminders: number): 1 | 2 | 3 {
  if (step >= reminders) return 3;
  return step <= 1 ? 1 : 2;
}

/** Provider statuses in the order they can happen; a status never moves backwards and a final one is sticky. */
const STATUS_RANK: Record<string, number> = {
  intent: 0,
  queued: 1,
  initiated: 1,
  sending: 2,
  ringing: 2,
  sent: 3,
  'in-progress': 3,
  delivered: 4,
  undelivered: 4,
  failed: 4,
  completed: 4,
  busy: 4,
  'no-answer': 4,
  canceled: 4,
};

export function isKnownStatus(status: string): boolean {
  return Object.prototype.hasOwnProperty.call(STATUS_RANK, status);
}

/** The current statuses a message may move from to reach `next`. */
export function statusesBefore(next: string): string[] {
  const rank = STATUS_RANK[next];
  return Object.keys(STATUS_RANK).filter((status) => STATUS_RANK[status] < rank);
}

/** The notification state a provider status implies, if any. */
export function notificationStateFor(status: string): 'delivered' | 'failed' | null {
  if (status === 'delivered' || status === 'completed') return 'delivered';
  if (['undelivered', 'failed', 'busy', 'no-answer', 'canceled'].includes(status)) return 'failed';
  return null;
}
