// `npm run test:chaos`: the chaos suite in two phases, so that it stays well under ten minutes on two cores.
// Most scenarios disrupt only their own processes, keys and connections (a SIGKILLed dispatcher, a faulty
// provider, a STOP mid-stream) and spend most of their time waiting for leases and settlements: they run two
// at a time. The two whose disruption is global under CHAOS_GLOBAL=1 (FLUSHALL, a Postgres restart) run after
// them, alone, and so does the replicas scenario, which keeps five app processes busy on its own. With
// arguments, jest runs just those, one at a time: `npm run test:chaos -- redis-wipe`.
import { spawnSync } from 'node:child_process';

const EXCLUSIVE = [
  'test/chaos/replicas.chaos.ts',
  'test/chaos/redis-wipe.chaos.ts',
  'test/chaos/postgres-restart.chaos.ts',
];
const jest = (args) =>
  spawnSync(process.execPath, ['node_modules/jest/bin/jest.js', '-c', 'jest.chaos.config.js', ...args], {
    stdio: 'inherit',
  }).status ?? 1;

const extra = process.argv.slice(2);
if (extra.length > 0) process.exit(jest(['--runInBand', ...extra]));

const shared = jest([
  '--maxWorkers=2',
  '--testPathIgnorePatterns',
  ...EXCLUSIVE.map((f) => f.replace(/\./g, '\\.')),
]);
const exclusive = jest(['--runInBand', ...EXCLUSIVE]);
process.exit(shared || exclusive);
