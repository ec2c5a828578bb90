import type { DataSource } from 'typeorm';
import { RetryLaterError } from '../errors';
import { PROVIDER_REQUEST_TIMEOUT_MS } from '../twilio/sms-provider';

/** Longer than any send can be in flight: a claim's lease plus the provider's timeout. */
const IN_FLIGHT_WINDOW_SECONDS = 90;
const POLL_MS = 25;

/**
 * How long an opt-out waits for sends in flight before answering 503: longer than a provider call may take, so
 * that a send which passed its consent check just before the opt-out has time to record its result, and short
 * enough to answer within Twilio's webhook timeout (an answer Twilio never sees acknowledges nothing either).
 */
export const IN_FLIGHT_WAIT_MS = PROVIDER_REQUEST_TIMEOUT_MS + 2_000;

/**
 * After an opt-out commits, waits until no send to these patients on this channel is still between its intent
 * and its result. A dispatcher re-checks consent under a share lock when it records an intent, so any send
 * that could still go out has already written its intent; once those have resolved, acknowledging the opt-out
 * (answering Twilio 200) can never be followed by a send on that channel. Bounded: false when sends are still
 * in flight at the deadline, and the caller must then not acknowledge (503: the opt-out is already committed;
 * a retry, where the sender makes one, waits again).
 */
export async function waitForInFlightSends(
  db: DataSource,
  patientIds: string[],
  channel: 'sms' | 'voice',
  timeoutMs = IN_FLIGHT_WAIT_MS,
): Promise<boolean> {
  if (patientIds.length === 0) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ open }] = await db.query<{ open: number }[]>(
      // In flight: an intent whose provider call has not ended (no result recorded), or ended without an answer
      // (a timeout or dropped connection: 'no_answer') less than the provider's timeout ago, since that request
      // may still reach the provider. One answered with a 5xx settles later, and any resend re-checks consent.
      `SELECT count(*)::int AS open FROM messages m
       WHERE m.patient_id = ANY($1::uuid[]) AND m.channel = $2 AND m.status = 'intent'
         AND m.created_at > now() - make_interval(secs => $3)
         AND NOT EXISTS (SELECT 1 FROM message_attempts a WHERE a.message_id = m.id AND a.event = 'result'
                           AND (a.status <> 'no_answer' OR m.created_at <= now() - make_interval(secs => $4)))`,
      [patientIds, channel, IN_FLIGHT_WINDOW_SECONDS, PROVIDER_REQUEST_TIMEOUT_MS / 1000],
    );
    if (open === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Before acknowledging a committed opt-out: returns once no send to these patients on this channel is in flight,
 * or throws RetryLaterError (503) so the caller retries; the retry finds the opt-out in force and waits again.
 */
export async function ensureNoSendsInFlight(
  db: DataSource,
  patientIds: string[],
  channel: 'sms' | 'voice',
): Promise<void> {
  if (await waitForInFlightSends(db, patientIds, channel)) return;
  throw new RetryLaterError(`opt-out recorded, but a ${channel} send is still in flight; retry later`);
}
