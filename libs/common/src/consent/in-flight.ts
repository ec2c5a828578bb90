import type { DataSource } from 'typeorm';

/** Longer than any send can be in flight: a claim's lease plus the provider's timeout. */
const IN_FLIGHT_WINDOW_SECONDS = 90;
const POLL_MS = 25;

/**
 * After an opt-out commits, waits until no send to these patients on this channel is still between its intent
 * and its result. A dispatcher re-checks consent under a share lock when it records an intent, so any send
 * that could still go out has already written its intent; once those have resolved, acknowledging the opt-out
 * (answering Twilio 200) can never be followed by a send on that channel. Bounded, so a stuck attempt cannot
 * hold the webhook past Twilio's own timeout.
 */
export async function waitForInFlightSends(
  db: DataSource,
  patientIds: string[],
  channel: 'sms' | 'voice',
  timeoutMs = 10_000,
): Promise<boolean> {
  if (patientIds.length === 0) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ open }] = await db.query<{ open: number }[]>(
      // In flight: an intent whose provider call has not ended (no result recorded). One that ended without an
      // answer settles later, and any resend re-checks consent first.
      `SELECT count(*)::int AS open FROM messages m
       WHERE m.patient_id = ANY($1::uuid[]) AND m.channel = $2 AND m.status = 'intent'
         AND m.created_at > now() - make_interval(secs => $3)
         AND NOT EXISTS (SELECT 1 FROM message_attempts a WHERE a.message_id = m.id AND a.event = 'result')`,
      [patientIds, channel, IN_FLIGHT_WINDOW_SECONDS],
    );
    if (open === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
