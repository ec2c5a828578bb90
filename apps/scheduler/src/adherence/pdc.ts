/**
 * Proportion of days covered (PDC), PQA method. Pure: dates in, numbers out, no clock and no I/O.
 *
 * Dates are local calendar dates (YYYY-MM-DD) turned into integer day numbers (days since 1970-01-01 as a
 * UTC date), so the arithmetic is plain integers and no time zone or DST change can shift a day.
 *
 * Decisions where the PQA text leaves room:
 * - A fill before the measurement window is ignored entirely: its supply carried into the window is not
 *   counted and does not shift later fills (PQA counts from the index fill inside the window).
 * - A fill dated after `today` is ignored (not yet received).
 * - A therapy with no fill inside the window is not reported.
 * - A single fill is enough for a result (PQA's two-fill denominator rule is the caller's to apply).
 * - Drugs are compared by exact name: "same drug" overlaps are shifted, different names in one class are not.
 */

export const PDC_WINDOW_DAYS = 365;
/** At risk strictly below this; exactly 0.80 is adherent. */
export const PDC_AT_RISK_BELOW = 0.8;

export interface PdcFill {
  /** Therapeutic class, else the drug name: the unit PDC is reported for. */
  therapy: string;
  drug: string;
  /** Local date the patient received the supply: pickup date, else fill date. */
  serviceDate: string;
  /** Whole days, at least 1. */
  daysSupply: number;
}

export interface TherapyPdc {
  therapy: string;
  /** daysCovered / daysInPeriod, rounded to 4 decimals. */
  pdc: number;
  daysCovered: number;
  /** From the index fill to today, both included. */
  daysInPeriod: number;
  /** The index fill: the first fill inside the window. */
  firstFillDate: string;
  /** The first day without supply (after same-drug shifts, before truncation); may be after today. */
  lastRunOutDate: string;
  /** Days from lastRunOutDate to today; 0 while covered, and 0 on the run-out day itself. */
  daysLate: number;
  atRisk: boolean;
}

const MS_PER_DAY = 86_400_000;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** YYYY-MM-DD as days since 1970-01-01; anything that is not a real calendar date is a RangeError. */
export function toDayNumber(date: string): number {
  const match = ISO_DATE.exec(date);
  const day = match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) / MS_PER_DAY : NaN;
  // Date.UTC rolls 2026-02-30 over into March and maps years 0-99 to 19xx: a real date round-trips.
  if (!Number.isInteger(day) || fromDayNumber(day) !== date)
    throw new RangeError(`date must be a calendar date YYYY-MM-DD`);
  return day;
}

export function fromDayNumber(day: number): string {
  return new Date(day * MS_PER_DAY).toISOString().slice(0, 10);
}

export function isAtRisk(pdc: number): boolean {
  return pdc < PDC_AT_RISK_BELOW;
}

/** PDC per therapy over the 365 days ending `today` (included), sorted by therapy (code point order). */
export function computePdc(fills: readonly PdcFill[], today: string): TherapyPdc[] {
  const end = toDayNumber(today);
  const windowStart = end - (PDC_WINDOW_DAYS - 1);
  const therapies = new Map<string, Map<string, Supply[]>>();
  for (const fill of fills) {
    if (!Number.isInteger(fill.daysSupply) || fill.daysSupply < 1)
      throw new RangeError('daysSupply must be a whole number of days, at least 1');
    const start = toDayNumber(fill.serviceDate);
    if (start < windowStart || start > end) continue;
    const drugs = therapies.get(fill.therapy) ?? new Map<string, Supply[]>();
    therapies.set(fill.therapy, drugs);
    const supplies = drugs.get(fill.drug) ?? [];
    drugs.set(fill.drug, supplies);
    supplies.push({ start, days: fill.daysSupply });
  }
  return [...therapies]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([therapy, drugs]) => therapyPdc(therapy, [...drugs.values()], end));
}

interface Supply {
  start: number;
  days: number;
}

function therapyPdc(therapy: string, drugs: Supply[][], end: number): TherapyPdc {
  const index = Math.min(...drugs.flat().map((s) => s.start));
  const daysInPeriod = end - index + 1;
  const covered = new Uint8Array(daysInPeriod);
  let runOut = index;
  for (const supplies of drugs) {
    // Same drug: an early refill's supply starts the day after the earlier supply ends. Sorting by start is
    // enough for order independence: fills starting the same day cover the same union in either order.
    const sorted = [...supplies].sort((a, b) => a.start - b.start);
    let next = index; // first day this drug does not cover yet
    for (const supply of sorted) {
      const from = Math.max(supply.start, next);
      next = from + supply.days;
      for (let day = from; day < Math.min(next, end + 1); day++) covered[day - index] = 1;
    }
    runOut = Math.max(runOut, next);
  }
  const daysCovered = covered.reduce((sum, c) => sum + c, 0);
  // With at most 365 days, the closest fraction below 0.80 is 291/364 = 0.79945..., so rounding to 4 decimals
  // never carries an at-risk fraction up to 0.8: atRisk on the rounded value agrees with the exact one.
  const pdc = Math.round((daysCovered / daysInPeriod) * 10_000) / 10_000;
  return {
    therapy,
    pdc,
    daysCovered,
    daysInPeriod,
    firstFillDate: fromDayNumber(index),
    lastRunOutDate: fromDayNumber(runOut),
    daysLate: Math.max(0, end - runOut),
    atRisk: isAtRisk(pdc),
  };
}
