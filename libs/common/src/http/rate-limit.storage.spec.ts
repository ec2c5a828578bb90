import { SlidingWindowStorage } from './rate-limit.storage';

const MINUTE = 60_000;

describe('SlidingWindowStorage (the rate limiter counters)', () => {
  let now: number;
  let storage: SlidingWindowStorage;
  /** One request of `caller` against a budget of `limit` a minute, blocked for a minute when over it. */
  const hit = (caller: string, limit: number) => storage.increment(caller, MINUTE, limit, MINUTE, 'default');

  beforeEach(() => {
    now = Date.UTC(2026, 11, 7, 12, 0, 0);
    storage = new SlidingWindowStorage(() => now);
  });

  it('counts each caller apart and refuses the request over the budget, saying how long to wait', async () => {
    for (let i = 1; i <= 3; i++) expect(await hit('a', 3)).toMatchObject({ totalHits: i, isBlocked: false });
    expect(await hit('b', 3)).toMatchObject({ totalHits: 1, isBlocked: false });
    now += 10_000;
    expect(await hit('a', 3)).toEqual({
      totalHits: 4,
      timeToExpire: 50,
      isBlocked: true,
      timeToBlockExpire: 60,
    });
  });

  it('lets a hit go one minute (and at most one second more) after it was made', async () => {
    await hit('a', 10); // at 12:00:00.000
    now += 30_000;
    for (let i = 0; i < 9; i++) await hit('a', 10); // at 12:00:30
    now += 30_500; // 12:01:00.5: the first hit has left, the other nine stay
    expect(await hit('a', 10)).toMatchObject({ totalHits: 10, isBlocked: false, timeToExpire: 30 });
    expect(await hit('a', 10)).toMatchObject({ totalHits: 11, isBlocked: true });
  });

  it('keeps a blocked caller out for the block duration, not counting its attempts, then starts again', async () => {
    for (let i = 0; i < 3; i++) await hit('a', 2);
    for (let i = 0; i < 5; i++) {
      now += 10_000; // up to 12:00:50
      expect(await hit('a', 2)).toMatchObject({ isBlocked: true, totalHits: 3 });
    }
    now = Date.UTC(2026, 11, 7, 12, 1, 0);
    expect(await hit('a', 2)).toMatchObject({ isBlocked: false, totalHits: 1, timeToBlockExpire: 0 });
  });

  it('holds a large budget exactly: 100,000 hits in a minute, the next one refused', async () => {
    for (let i = 0; i < 100_000; i++) {
      if (i % 2_000 === 0) now += 1_000; // 50 seconds in all
      await hit('twilio', 100_000);
    }
    expect(await hit('twilio', 100_000)).toMatchObject({ totalHits: 100_001, isBlocked: true });
  });

  it('forgets callers idle for a minute, but not one whose block still runs', async () => {
    await hit('idle', 5);
    for (let i = 0; i < 2; i++) await storage.increment('blocked', MINUTE, 1, 5 * MINUTE, 'default');
    now += 61_000;
    await hit('fresh', 5);
    expect(storage.size).toBe(2);
    expect(await storage.increment('blocked', MINUTE, 1, 5 * MINUTE, 'default')).toMatchObject({
      isBlocked: true,
      timeToBlockExpire: 239,
    });
  });
});
