/** When a message may go out: quiet hours in the patient's time zone and reminder caps. Plain functions of data. */

export interface QuietWindow {
  /** "HH:MM", local; messages go out from start (inclusive) to end (exclusive). */
  start: string;
  end: string;
}

export interface Caps {
  perDay: number;
  perWeek: number;
}

const DAY_MS = 24 * 3600_000;

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function localParts(instant: Date, timeZone: string): LocalParts {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  const parts: Record<string, number> = {};
  for (const part of format.formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour, minute: parts.minute };
}

/** The UTC instant at which the wall clock in `timeZone` reads the given local time (DST-aware). */
export function zonedTimeToUtc(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  timeZone: string,
): Date {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wall;
  // Two rounds settle the offset, including on the days the offset changes.
  for (let i = 0; i < 2; i++) {
    const seen = localParts(new Date(guess), timeZone);
    const seenWall = Date.UTC(seen.year, seen.month - 1, seen.day, seen.hour, seen.minute);
    guess += wall - seenWall;
  }
  return new Date(guess);
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * Null when a message may go out now; otherwise the next moment the window opens in the patient's local time.
 * A message held at night is sent at the next opening, never dropped.
 */
export function nextOpening(now: Date, timeZone: string, window: QuietWindow): Date | null {
  const local = localParts(now, timeZone);
  const minutes = local.hour * 60 + local.minute;
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  if (minutes >= start && minutes < end) return null;
  const dayOffset = minutes >= end ? 1 : 0;
  const date = new Date(Date.UTC(local.year, local.month - 1, local.day + dayOffset));
  const [y, m, d] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
  const opening = zonedTimeToUtc(y, m, d, Math.floor(start / 60), start % 60, timeZone);
  const seen = localParts(opening, timeZone);
  if (seen.hour * 60 + seen.minute === start) return opening;
  // The start falls in a spring-forward gap (02:30 on a day clocks jump from 02:00 to 03:00): that wall time
  // never exists, and the instant computed for it lies before the gap. The window opens when the gap ends.
  return zonedTimeToUtc(y, m, d, Math.floor(start / 60) + 1, 0, timeZone);
}

/**
 * Null when another reminder may go to this patient now; otherwise when the earliest cap frees up.
 * Windows are rolling: the last 24 hours and the last 7 days. `sentAt` lists reminder sends to the patient.
 */
export function capRelease(now: Date, sentAt: Date[], caps: Caps): Date | null {
  const times = sentAt
    .map((d) => d.getTime())
    .filter((t) => t <= now.getTime())
    .sort((a, b) => a - b);
  const release = (windowMs: number, limit: number): number | null => {
    const inWindow = times.filter((t) => t > now.getTime() - windowMs);
    if (inWindow.length < limit) return null;
    // The send that must leave the window before one more fits.
    return inWindow[inWindow.length - limit] + windowMs;
  };
  const candidates = [release(DAY_MS, caps.perDay), release(7 * DAY_MS, caps.perWeek)].filter(
    (t): t is number => t !== null,
  );
  return candidates.length ? new Date(Math.max(...candidates)) : null;
}

/** When the message may go: the later of the cap release and now, then moved into the quiet-hours window. */
export function earliestSend(
  now: Date,
  timeZone: string,
  window: QuietWindow,
  capFree: Date | null,
): Date | null {
  const from = capFree && capFree > now ? capFree : now;
  const opening = nextOpening(from, timeZone, window);
  if (opening) return opening;
  return from > now ? from : null;
}
