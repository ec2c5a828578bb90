import {
  disruptPostgres,
  enqueue,
  expectMidStream,
  openScenario,
  seedNotices,
  sentSoFar,
  settle,
  tally,
  untilSent,
  type Scenario,
} from './harness';

const N = 2000;

/**
 * Postgres goes away in the middle of 2,000 sends: restarted for real under CHAOS_GLOBAL=1, else every
 * connection to the scenario's database terminated twice, a second apart. Statements die between claim, intent,
 * provider call and result; status callbacks fail. Every notification still sent exactly once. Two dispatchers.
 */
describe('chaos: Postgres restarted mid-send', () => {
  let s: Scenario;
  afterAll(async () => {
    await s?.close();
  });

  it('sends each of 2,000 notifications exactly once although the database connections died', async () => {
    s = await openScenario('postgres-restart', { dispatchers: 2 });
    const { ids, expected } = await seedNotices(s, N);
    await enqueue(s, ids);

    await untilSent(s, Math.floor(N * 0.4));
    // Counted just before: the disruption's own queries cannot tell while the database is away.
    const sent = await sentSoFar(s);
    expectMidStream(sent, N);
    const how = await disruptPostgres(s);
    const disruption = { atSecond: Math.round((Date.now() - s.startedAt) / 1000), sent, how };
    const settled = await settle(s, 180000);
    const result = await tally(s, expected, { disruption, settled });
    expect(result).toMatchObject({
      lost: 0,
      duplicated: 0,
      notSent: 0,
      notificationRows: N,
      unaccountedTexts: 0,
    });
  });
});
