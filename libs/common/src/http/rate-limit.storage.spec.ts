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
      timeToExpire: 51,
      isBlocked: true,
      timeToBlockExpire: 60,
    });
  });

  it('counts a hit for a whole minute and lets it go within the second after', async () => {
    expect(await hit('a', 10)).toMatchObject({ totalHits: 1 }); // 12:00:00.000
    now = Date.UTC(2026, 11, 7, 12, 1, 0, 999);
    expect(await hit('a', 10)).toMatchObject({ totalHits: 2 }); // the first still counts
    now = Date.UTC(2026, 11, 7, 12, 1, 1, 0);
    expect(await hit('a', 10)).toMatchObject({ totalHits: 2 }); // the first has left
  });

  it('still counts a hit made late in a second when the minute after it begins', async () => {
    now = Date.UTC(2026, 11, 7, 12, 0, 0, 999);
    for (let i = 0; i < 3; i++) expect(await hit('a', 3)).toMatchObject({ isBlocked: false });
    now = Date.UTC(2026, 11, 7, 12, 1, 0, 0); // 59.001 s later: all three still count
    expect(await hit('a', 3)).toMatchObject({ totalHits: 4, isBlocked: true, timeToBlockExpire: 60 });
  });

  it('with no block period, refuses at the limit without counting, until the oldest hit leaves', async () => {
    const noBlock = (caller: string) => storage.increment(caller, MINUTE, 2, 0, 'default');
    await noBlock('a'); // 12:00:00
    now += 20_000;
    await noBlock('a'); // 12:00:20
    now += 20_000;
    expect(await noBlock('a')).toEqual({
      totalHits: 3,
      timeToExpire: 21,
      isBlocked: true,
      timeToBlockExpire: 21,
    });
    now = Date.UTC(2026, 11, 7, 12, 1, 1); // the first hit has left
    expect(await noBlock('a')).toMatchObject({ totalHits: 2, isBlocked: false });
  });

  it('keeps the counts of two windows apart for one caller', async () => {
    await storage.increment('a', MINUTE, 1, MINUTE, 'default');
    expect(await storage.increment('a', 10_000, 1, 10_000, 'default')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
  });

  it('drops the counts and the block when the clock steps back, rather than holding them until it catches up', async () => {
    for (let i = 0; i < 4; i++) await hit('a', 3);
    expect(await hit('a', 3)).toMatchObject({ isBlocked: true });
    now -= 10 * MINUTE;
    for (let i = 1; i <= 3; i++) expect(await hit('a', 3)).toMatchObject({ totalHits: i, isBlocked: false });
    // And the hits counted since leave a minute later, as usual.
    now += 61_000;
    expect(await hit('a', 3)).toMatchObject({ totalHits: 1, isBlocked: false });
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
