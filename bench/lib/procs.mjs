// The apps as separate processes from the built output, wired as test/helpers/stack.ts wires them.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXPERIMENTS, PHI_ENCRYPTION_KEYS, PHI_INDEX_KEY, REDIS_URL, ROOT, RUN_ID, dist, sleep } from './env.mjs';
import { request } from './http.mjs';

const ENTRIES = {
  'consent-api': 'dist/apps/consent-api/src/main.js',
  scheduler: 'dist/apps/scheduler/src/main.js',
  dispatcher: 'dist/apps/dispatcher/src/main.js',
  cli: 'dist/apps/cli/src/main.js',
};

/** App output goes to files in one temp folder per run, made when the first app starts (kept when a benchmark fails). */
let logDir = null;
export function logDirectory(create = false) {
  if (!logDir && create) logDir = mkdtempSync(join(tmpdir(), `rxn-bench-${RUN_ID}-`));
  return logDir;
}
const running = new Set();
/** Every queue prefix handed to apps in this run, so an aborted run can still clean Redis. */
export const usedPrefixes = new Set();

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * The environment every app of one benchmark shares. Rate limits are lifted: the benchmarks drive one API key
 * and one webhook source far past a pharmacy's real traffic, and measure the product, not the throttle.
 */
export async function appEnv(database, sandbox, extra = {}) {
  const { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } = dist('libs/common/src/config/config');
  const [consentPort, schedulerPort, dispatcherPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const urls = {
    consentApi: `http://127.0.0.1:${consentPort}`,
    scheduler: `http://127.0.0.1:${schedulerPort}`,
    dispatcher: `http://127.0.0.1:${dispatcherPort}`,
  };
  const env = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    DATABASE_URL: database.url,
    REDIS_URL,
    QUEUE_PREFIX: `rxb-${RUN_ID}-${database.name.split('_').pop()}`,
    PHI_ENCRYPTION_KEYS,
    PHI_INDEX_KEY,
    CONSENT_API_PORT: String(consentPort),
    SCHEDULER_PORT: String(schedulerPort),
    DISPATCHER_PORT: String(dispatcherPort),
    CONSENT_API_PUBLIC_URL: urls.consentApi,
    DISPATCHER_PUBLIC_URL: urls.dispatcher,
    TWILIO_API_BASE_URL: sandbox ? sandbox.url : 'http://127.0.0.1:9',
    TWILIO_ACCOUNT_SID: SANDBOX_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: SANDBOX_AUTH_TOKEN,
    TWILIO_SANDBOX: '1',
    LOG_LEVEL: 'info',
    SCAN_INTERVAL_SECONDS: '86400',
    RATE_LIMIT_PER_MINUTE: '1000000',
    WEBHOOK_RATE_LIMIT_PER_MINUTE: '1000000',
    ...(EXPERIMENTS.includes('no_telemetry') ? { OTEL_SDK_DISABLED: 'true' } : {}),
    ...(EXPERIMENTS.includes('quiet_logs') ? { LOG_LEVEL: 'warn' } : {}),
    ...extra,
  };
  usedPrefixes.add(env.QUEUE_PREFIX);
  return { env, urls };
}

/** Starts one app and waits for GET /health to answer 200. */
export async function startApp(name, env, url, timeoutMs = 60000) {
  const logFile = join(logDirectory(true), `${env.QUEUE_PREFIX}-${name}.log`);
  const fd = openSync(logFile, 'a');
  // Node flags for the app processes only, e.g. BENCH_APP_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
  const nodeArgs = (process.env.BENCH_APP_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, ENTRIES[name])], { cwd: ROOT, env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const app = { name, child, pid: child.pid, logFile, url, log: () => readFileSync(logFile, 'utf8') };
  running.add(app);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} at boot; see ${logFile}:\n${app.log().slice(-3000)}`);
    try {
      if ((await request(`${url}/health`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy in ${timeoutMs} ms; see ${logFile}`);
    await sleep(100);
  }
  return app;
}

export async function stopApp(app) {
  running.delete(app);
  const { child } = app;
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function stopAllApps() {
  await Promise.all([...running].map(stopApp));
}

/** The operator CLI against the benchmark's database; returns the last line of stdout (the key, for api-key create). */
export function cli(env, ...args) {
  const result = spawnSync(process.execPath, [join(ROOT, ENTRIES.cli), ...args], { cwd: ROOT, env, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`cli ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout.trim().split('\n').pop();
}

export function rssMb(pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Samples each app's VmRSS every `everyMs`; `stop()` returns the peak per app in MB, `timeline(name)` the
 * samples as [seconds since start, MB] pairs, thinned to one every `stepSeconds`.
 */
export function sampleRss(apps, everyMs = 250) {
  const peak = Object.fromEntries(apps.map((app) => [app.name, 0]));
  const samples = Object.fromEntries(apps.map((app) => [app.name, []]));
  const t0 = performance.now();
  const tick = () => {
    const t = (performance.now() - t0) / 1000;
    for (const app of apps) {
      const mb = rssMb(app.pid);
      if (mb === null) continue;
      samples[app.name].push([t, mb]);
      if (mb > peak[app.name]) peak[app.name] = mb;
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return Object.fromEntries(Object.entries(peak).map(([name, mb]) => [name, Number(mb.toFixed(1))]));
    },
    timeline(name, stepSeconds = 1) {
      const out = [];
      for (const [t, mb] of samples[name]) {
        if (out.length === 0 || t - out[out.length - 1][0] >= stepSeconds) out.push([Number(t.toFixed(1)), Math.round(mb)]);
        else out[out.length - 1][1] = Math.max(out[out.length - 1][1], Math.round(mb));
      }
      return out;
    },
  };
}

const TICKS = 100; // USER_HZ on Linux

function cpuSeconds(pid, which = 'both') {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(fields[11]);
    const system = Number(fields[12]);
    return (which === 'system' ? system : which === 'user' ? user : user + system) / TICKS;
  } catch {
    return null;
  }
}

function commOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

function machineBusySeconds() {
  const [cpu] = readFileSync('/proc/stat', 'utf8').split('\n');
  const v = cpu.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  return { busy: (v.reduce((a, b) => a + b, 0) - idle) / TICKS };
}

/**
 * CPU time spent between `cpuMeter()` and `stop()`, in seconds: by each app process (and the kernel's part of
 * it), by this process (the in-process sandbox and the load generator), by the Postgres backends serving the
 * benchmark's database (plus the WAL writer and checkpointer, shared with the machine; read every 200 ms, so
 * a backend whose connection closed during the run still counts), by redis-server, by the
 * whole machine, and by everything else on it (`otherProcesses`: the noise). `machineBusy / seconds` near the
 * number of cores means the run was CPU-bound.
 */
export async function cpuMeter(apps, db) {
  const backends = async () => {
    const client = await db.pool.connect().catch(() => null);
    if (!client) return [];
    try {
      const { rows } = await client.query(
        `SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() OR backend_type IN ('walwriter', 'checkpointer', 'background writer')`,
      );
      return rows.map((r) => String(r.pid));
    } finally {
      client.release();
    }
  };
  const redisPids = () => readdirSync('/proc').filter((e) => /^\d+$/.test(e) && commOf(e) === 'redis-server');
  const snapshot = (pids) => new Map(pids.map((pid) => [pid, cpuSeconds(pid) ?? 0]));
  // An app's pool closes connections that sat idle and opens new ones: a backend that exits during the run takes
  // its CPU time with it, so every backend is read every 200 ms and counted up to its last reading. One that
  // started during the run counts from zero.
  const postgres0 = snapshot(await backends());
  const postgresLast = new Map(postgres0);
  const readBackends = async () => {
    for (const pid of await backends()) {
      const used = cpuSeconds(pid);
      if (used !== null) postgresLast.set(pid, used);
    }
  };
  let reading = Promise.resolve();
  const poll = setInterval(() => {
    reading = reading.then(readBackends).catch(() => undefined);
  }, 200);
  const redis0 = snapshot(redisPids());
  const t0 = performance.now();
  const apps0 = new Map(apps.map((app) => [app.name, cpuSeconds(app.pid) ?? 0]));
  const appsSystem0 = new Map(apps.map((app) => [app.name, cpuSeconds(app.pid, 'system') ?? 0]));
  const self0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  return {
    async stop() {
      const seconds = (performance.now() - t0) / 1000;
      const machine = machineBusySeconds().busy - machine0.busy;
      const self = process.cpuUsage(self0);
      const result = { seconds: Number(seconds.toFixed(2)) };
      let ours = 0;
      for (const app of apps) {
        const used = (cpuSeconds(app.pid) ?? 0) - apps0.get(app.name);
        ours += used;
        result[app.name] = Number(used.toFixed(2));
        result[`${app.name}KernelPart`] = Number(((cpuSeconds(app.pid, 'system') ?? 0) - appsSystem0.get(app.name)).toFixed(2));
      }
      clearInterval(poll);
      await reading;
      await readBackends().catch(() => undefined);
      let postgres = 0;
      for (const [pid, last] of postgresLast) postgres += Math.max(0, last - (postgres0.get(pid) ?? 0));
      const redis = redisPids().reduce((sum, pid) => sum + Math.max(0, (cpuSeconds(pid) ?? 0) - (redis0.get(pid) ?? 0)), 0);
      result.benchProcess = Number(((self.user + self.system) / 1e6).toFixed(2));
      result.postgres = Number(postgres.toFixed(2));
      result.redis = Number(redis.toFixed(2));
      ours += (self.user + self.system) / 1e6 + postgres + redis;
      result.machineBusy = Number(machine.toFixed(2));
      result.otherProcesses = Number(Math.max(0, machine - ours).toFixed(2));
      return result;
    },
  };
}

export function removeLogDir() {
  if (logDir) rmSync(logDir, { recursive: true, force: true });
}
