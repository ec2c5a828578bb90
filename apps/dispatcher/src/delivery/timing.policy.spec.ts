import fc from 'fast-check';
import { capRelease, earliestSend, nextOpening, zonedTimeToUtc } from './timing.policy';

const window = { start: '09:00', end: '20:00' };
const at = (iso: string) => new Date(iso);

describe('nextOpening (quiet hours 09:00–20:00 local)', () => {
  it.each([
    ['New York, 14:00 local', '2026-06-10T18:00:00Z', 'America/New_York', null],
    ['New York, 08:59 local', '2026-06-10T12:59:00Z', 'America/New_York', '2026-06-10T13:00:00.000Z'],
    [
      'New York, 20:00 local (end is exclusive)',
      '2026-06-11T00:00:00Z',
      'America/New_York',
      '2026-06-11T13:00:00.000Z',
    ],
    ['New York, 23:30 local, winter', '2026-01-15T04:30:00Z', 'America/New_York', '2026-01-15T14:00:00.000Z'],
    ['Los Angeles, 06:00 local', '2026-06-10T13:00:00Z', 'America/Los_Angeles', '2026-06-10T16:00:00.000Z'],
    ['Tokyo (east of UTC), 21:00 local', '2026-06-10T12:00:00Z', 'Asia/Tokyo', '2026-06-11T00:00:00.000Z'],
    [
      'Kolkata (half-hour offset), 08:45 local',
      '2026-06-10T03:15:00Z',
      'Asia/Kolkata',
      '2026-06-10T03:30:00.000Z',
    ],
    [
      'night before spring-forward (New York, Mar 7 22:00)',
      '2026-03-08T03:00:00Z',
      'America/New_York',
      '2026-03-08T13:00:00.000Z',
    ],
    [
      'night before fall-back (New York, Oct 31 22:00)',
      '2026-11-01T02:00:00Z',
      'America/New_York',
      '2026-11-01T14:00:00.000Z',
    ],
    [
      'Auckland, DST ends Apr 5 2026, 23:00 local on Apr 4',
      '2026-04-04T10:00:00Z',
      'Pacific/Auckland',
      '2026-04-04T21:00:00.000Z',
    ],
    ['month end rolls to the 1st', '2026-05-01T01:00:00Z', 'America/Chicago', '2026-05-01T14:00:00.000Z'],
  ])('%s', (_, now, zone, expected) => {
    expect(nextOpening(at(now), zone, window)?.toISOString() ?? null).toBe(expected);
  });

  it.each([
    ['01:00 EST, the night the clocks skip 02:00–03:00', '2026-03-08T06:00:00Z'],
    ['01:45 EST, just before the gap', '2026-03-08T06:45:00Z'],
    ['01:59 EST', '2026-03-08T06:59:00Z'],
  ])('a window starting inside the spring-forward gap opens when the gap ends (%s)', (_, now) => {
    const gap = { start: '02:30', end: '20:00' };
    // 03:00 EDT: the first instant the wall clock reads past 02:30 that day. Never a time already gone.
    expect(nextOpening(at(now), 'America/New_York', gap)?.toISOString()).toBe('2026-03-08T07:00:00.000Z');
    expect(nextOpening(at('2026-03-08T07:00:00Z'), 'America/New_York', gap)).toBeNull();
  });

  it('always lands inside the window, on or after now, within a day', () => {
    const zones = [
      'America/New_York',
      'America/Los_Angeles',
      'Europe/London',
      'Asia/Tokyo',
      'Australia/Sydney',
      'Pacific/Auckland',
      'America/Phoenix',
    ];
    fc.assert(
      fc.property(
        fc.date({ min: at('2025-01-01T00:00:00Z'), max: at('2028-12-31T00:00:00Z') }),
        fc.constantFrom(...zones),
        (now, zone) => {
          const opening = nextOpening(now, zone, window);
          if (opening === null) return true;
          return (
            opening > now &&
            opening.getTime() - now.getTime() <= 25 * 3600_000 &&
            nextOpening(opening, zone, window) === null
          );
        },
      ),
    );
  });
});

describe('zonedTimeToUtc', () => {
  it('knows both sides of a DST change', () => {
    expect(zonedTimeToUtc(2026, 3, 7, 9, 0, 'America/New_York').toISOString()).toBe(
      '2026-03-07T14:00:00.000Z',
    );
    expect(zonedTimeToUtc(2026, 3, 9, 9, 0, 'America/New_York').toISOString()).toBe(
      '2026-03-09T13:00:00.000Z',
    );
  });
});

describe('capRelease (1 a day, 3 a week)', () => {
  const caps = { perDay: 1, perWeek: 3 };
  const now = at('2026-06-10T15:00:00Z');
  const hoursAgo = (h: number) => new Date(now.getTime() - h * 3600_000);

  it.each([
    ['nothing sent', [], null],
    ['one sent 25 hours ago', [25], null],
    ['one sent 3 hours ago: the next waits a day after it', [3], '2026-06-11T12:00:00.000Z'],
    [
      'three this week: the fourth waits until the oldest leaves the week',
      [30, 60, 100],
      '2026-06-13T11:00:00.000Z',
    ],
    ['two this week, none today', [30, 60], null],
    ['sent 8 days ago does not count', [192, 30, 60], null],
  ])('%s', (_, hours, expected) => {
    expect(capRelease(now, (hours as number[]).map(hoursAgo), caps)?.toISOString() ?? null).toBe(expected);
  });

  it('never releases before now and never lets the cap be exceeded', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 8 }), (hours) => {
        const release = capRelease(now, hours.map(hoursAgo), caps);
        const sent = hours.map(hoursAgo);
        const moment = release ?? now;
        const inDay = sent.filter((s) => s.getTime() > moment.getTime() - 24 * 3600_000).length;
        const inWeek = sent.filter((s) => s.getTime() > moment.getTime() - 7 * 24 * 3600_000).length;
        return moment >= now && inDay < caps.perDay + (release ? 0 : 1) && inWeek <= caps.perWeek;
      }),
    );
  });
});

describe('earliestSend', () => {
  it('moves a cap release that falls at night to the next morning', () => {
    // Cap frees at 23:00 New York time: the reminder waits for 09:00.
    const now = at('2026-06-10T18:00:00Z');
    expect(earliestSend(now, 'America/New_York', window, at('2026-06-11T03:00:00Z'))?.toISOString()).toBe(
      '2026-06-11T13:00:00.000Z',
    );
  });
  it('is null when nothing holds the message', () => {
    expect(earliestSend(at('2026-06-10T18:00:00Z'), 'America/New_York', window, null)).toBeNull();
  });
});
