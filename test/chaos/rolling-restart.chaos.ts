import {
  enqueue,
  inFlight,
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
 * A deployment: three dispatchers behind a balancer (Twilio's callbacks reach whichever is up), replaced one at a
 * time while 2,000 texts go out: SIGTERM one, wait for it to exit, start its replacement, wait until it is healthy,
 * then the next. A graceful stop finishes or hands back what it holds: nothing lost, nothing sent twice.
 */
describe('chaos: rolling restart of the dispatchers', () => {
  let s: Scenario;
  afterAll(async () => {
    await s?.close();
  });

  it('sends each of 2,000 notifications exactly once through a rolling restart', async () => {
    s = await openScenario('rolling-restart', { dispatchers: 3, balancer: true });
    const { ids, expected } = await seedNotices(s, N);
    await enqueue(s, ids);

    await untilSent(s, Math.floor(N * 0.1));
    const rolls: Array<Record<string, unknown>> = [];
    for (const name of ['dispatcher', 'dispatcher-2', 'dispatcher-3']) {
      const sent = await sentSoFar(s);
      const pid = s.stack.processes().find((p) => p.name === name)?.pid;
      const exit = await s.stack.kill(name, 'SIGTERM', 30000);
      const left = await inFlight(s, pid);
      const replacement = await s.stack.add('dispatcher');
      rolls.push({
        stopped: name,
        sent,
        exit: exit.signal ?? exit.code,
        stopMs: exit.ms,
        ...left,
        replacement,
      });
    }
    const settled = await settle(s, 180000);
    const result = await tally(s, expected, { rolls, settled });
    expect(result).toMatchObject({
      lost: 0,
      duplicated: 0,
      notSent: 0,
      notificationRows: N,
      unaccountedTexts: 0,
    });
    // A SIGTERM is a clean stop: each old dispatcher exits by itself within the grace period (no SIGKILL needed).
    expect(rolls.filter((roll) => roll.exit === 'SIGKILL')).toEqual([]);
  });
});
