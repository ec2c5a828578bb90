import {
  enqueue,
  expectMidStream,
  inFlight,
  openScenario,
  seedNotices,
  sentSoFar,
  settle,
  sleep,
  tally,
  untilSent,
  type Scenario,
} from './harness';

const N = 2000;

/**
 * The dispatcher dies by SIGKILL three times while 2,000 texts go out (at 10%, 20% and 30% sent, so the lease
 * recovery of each kill overlaps the sending of the rest), and is started again each time. Whatever it held (claims with leases, BullMQ jobs with locks,
 * intents whose answer never came back) is recovered by the next process: every notification sent exactly once.
 */
describe('chaos: dispatcher SIGKILLed mid-send', () => {
  let s: Scenario;
  afterAll(async () => {
    await s?.close();
  });

  it('sends each of 2,000 notifications exactly once across 3 SIGKILLs', async () => {
    s = await openScenario('dispatcher-sigkill');
    const { ids, expected } = await seedNotices(s, N);
    await enqueue(s, ids);

    // What each kill left behind: notifications sent so far, claims held by the dead process, intents without a result.
    const kills: Array<Record<string, number | undefined>> = [];
    for (const fraction of [0.1, 0.2, 0.3]) {
      await untilSent(s, Math.floor(N * fraction));
      const pid = s.stack.processes().find((p) => p.name === 'dispatcher')?.pid;
      await s.stack.kill('dispatcher', 'SIGKILL');
      // Counted once the process is dead: nothing moves until the next one starts.
      const sent = await sentSoFar(s);
      const left = await inFlight(s, pid);
      kills.push({ atSecond: Math.round((Date.now() - s.startedAt) / 1000), sent, ...left });
      expectMidStream(sent, N);
      await sleep(500);
      await s.stack.start('dispatcher');
    }
    // The kills cut sends short: some claims or attempts were left behind for recovery.
    expect(kills.reduce((sum, k) => sum + (k.sending ?? 0) + (k.intents ?? 0), 0)).toBeGreaterThan(0);
    const settled = await settle(s, 180000);
    const result = await tally(s, expected, { kills, settled });
    expect(result).toMatchObject({
      lost: 0,
      duplicated: 0,
      notSent: 0,
      notificationRows: N,
      unaccountedTexts: 0,
    });
  });
});
