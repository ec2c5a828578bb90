// `npm run bench`: every benchmark in turn, each on its own database and queue prefix. JSON result on stdout,
// progress on stderr. BENCH_SIZE=small for CI (reports only, never fails on a figure); BENCH_ONLY=a,b to pick.
import os from 'node:os';
import { EXPERIMENTS, log, RUN_ID, SIZE, SMALL } from './lib/env.mjs';
import { dropOpenDatabases, dropStaleDatabases } from './lib/db.mjs';
import { logDirectory, removeLogDir, stopAllApps, usedPrefixes } from './lib/procs.mjs';
import { cleanPrefix } from './lib/queue.mjs';
import { csvImport } from './csv-import.mjs';
import { dispatcherThroughput } from './dispatcher-throughput.mjs';
import { readyLatency } from './ready-latency.mjs';
import { scan } from './scan.mjs';

const BENCHMARKS = {
  dispatcher_throughput: dispatcherThroughput,
  ready_latency: readyLatency,
  scan,
  csv_import: csvImport,
};

const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',').map((s) => s.trim()) : null;
const unknown = (only ?? []).filter((name) => !(name in BENCHMARKS));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}\n`);
  process.exit(2);
}

let interrupted = false;
async function abort(why, code) {
  // Dropping the databases cuts open connections: the errors that follow are expected, not a second abort.
  if (interrupted) return;
  interrupted = true;
  log(`${why}: stopping apps and dropping databases`);
  await stopAllApps().catch(() => undefined);
  await dropOpenDatabases().catch(() => undefined);
  for (const prefix of usedPrefixes) await cleanPrefix(prefix).catch(() => undefined);
  process.exit(code);
}
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => abort(signal, 130));
// Never leave app processes or databases behind, whatever breaks.
process.on('unhandledRejection', (error) => abort(`unhandled rejection: ${error instanceof Error ? error.stack : error}`, 1));
process.on('uncaughtException', (error) => abort(`uncaught exception: ${error.stack}`, 1));

await dropStaleDatabases().catch((error) => log(`could not list stale databases: ${error.message}`));

const started = performance.now();
const result = { size: SIZE, run: RUN_ID, startedAt: new Date().toISOString(), machine: { cpus: os.cpus().length, node: process.version }, benchmarks: {} };
if (EXPERIMENTS.length > 0) {
  result.experiments = EXPERIMENTS;
  result.warning = 'diagnostic what-if run: these figures are not the product\'s';
}
let failed = false;
for (const [name, run] of Object.entries(BENCHMARKS)) {
  if (only && !only.includes(name)) continue;
  log(`${name}: start (${SIZE})`);
  const t0 = performance.now();
  try {
    result.benchmarks[name] = { ...(await run({ full: !SMALL && EXPERIMENTS.length === 0 })), benchSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)) };
  } catch (error) {
    if (interrupted) break;
    failed = true;
    result.benchmarks[name] = { error: error instanceof Error ? error.message : String(error) };
    log(`${name}: FAILED ${error instanceof Error ? error.stack : error}`);
    await stopAllApps();
    await dropOpenDatabases();
  }
  log(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
result.durationSeconds = Number(((performance.now() - started) / 1000).toFixed(1));
if ((failed || process.env.BENCH_KEEP_LOGS) && logDirectory()) log(`app logs kept in ${logDirectory()}`);
else removeLogDir();
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
// Keep-alive sockets and Redis handles must not hold the process open.
process.exit(failed ? 1 : 0);
