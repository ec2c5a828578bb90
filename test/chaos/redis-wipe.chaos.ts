import {
  enqueue,
  expectMidStream,
  inFlight,
  openScenario,
  seedNotices,
  sentSoFar,
  settle,
  tally,
  untilSent,
  wipeRedis,
  type Scenario,
} from './harness';

const N = 2000;

/**
 * Redis loses everything halfway through 2,000 sends (FLUSHALL under CHAOS_GLOBAL=1, else every key of the
 * scenario's prefix): waiting jobs, active jobs' locks, the rate counters. Postgres still knows what is owed, and
 * the reconciler re-enqueues it: every notification sent exactly once. Two dispatchers, so the reconcilers'
 * one-at-a-time lock is in play too.
 */
describe('chaos: Redis wiped mid-send', () => {
  let s: Scenario;
  afterAll(async () => {
    await s?.close();
  });

  it('sends each of 2,000 notifications exactly once although Redis lost its data', async () => {
    s = await openScenario('redis-wipe', { dispatchers: 2 });
    const { ids, expected } = await seedNotices(s, N);
    await enqueue(s, ids);

    await untilSent(s, Math.floor(N * 0.4));
    const how = await wipeRedis(s);
    const sent = await sentSoFar(s);
    const wipe = { atSecond: Math.round((Date.now() - s.startedAt) / 1000), sent, how };
    const after = await inFlight(s);
    expectMidStream(sent, N);
    const settled = await settle(s, 120000);
    const result = await tally(s, expected, { wipe: { ...wipe, ...after }, settled });
    expect(result).toMatchObject({
      lost: 0,
      duplicated: 0,
      notSent: 0,
      notificationRows: N,
      unaccountedTexts: 0,
    });
  });
});
