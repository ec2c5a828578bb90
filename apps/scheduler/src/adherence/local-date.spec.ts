import { localDate } from './local-date';

describe('localDate', () => {
  it.each([
    ['2026-03-10T03:00:00Z', 'America/Los_Angeles', '2026-03-09'],
    ['2026-03-10T03:00:00Z', 'America/New_York', '2026-03-09'],
    ['2026-03-10T03:00:00Z', 'Europe/Berlin', '2026-03-10'],
    ['2026-03-10T03:00:00Z', 'UTC', '2026-03-10'],
    ['2026-01-01T07:59:59Z', 'America/Los_Angeles', '2025-12-31'],
    ['2026-01-01T08:00:00Z', 'America/Los_Angeles', '2026-01-01'],
    ['2024-02-29T12:00:00Z', 'Pacific/Kiritimati', '2024-03-01'],
  ])('%s in %s is %s', (instant, timeZone, expected) => {
    expect(localDate(new Date(instant), timeZone)).toBe(expected);
  });

  it('refuses an unknown time zone', () => {
    expect(() => localDate(new Date(), 'Mars/Olympus_Mons')).toThrow(RangeError);
  });
});
