// Shared settings of every benchmark: sizes, keys, the compiled product (dist/) and progress output.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const require = createRequire(import.meta.url);

/** Requires a compiled module of the product, e.g. dist('libs/common/src/crypto/key-ring'). */
export function dist(path) {
  const file = join(ROOT, 'dist', `${path}.js`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\``);
  return require(file);
}

/** Requires a package from the repository's node_modules (bullmq, pg, ioredis). */
export const pkg = (name) => require(name);

export const SIZE = process.env.BENCH_SIZE === 'small' ? 'small' : 'full';
export const SMALL = SIZE === 'small';

/** One id for this run: database names, queue prefixes and temp folders carry it. */
export const RUN_ID = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;

export const SERVER = process.env.BENCH_DATABASE_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// Fixed bench keys: the apps get them through PHI_ENCRYPTION_KEYS / PHI_INDEX_KEY, the bench encrypts with them.
export const PHI_ENCRYPTION_KEYS = `bench1:${Buffer.alloc(32, 11).toString('base64')}`;
export const PHI_INDEX_KEY = Buffer.alloc(32, 12).toString('base64');

/**
 * Diagnostic "what if" runs (BENCH_EXPERIMENT=a,b), never for the reported figures: each removes one suspected
 * cost from the benchmark's own database or app environment, so its share can be measured.
 *   unchained_audit   audit rows get a sequence number at insert and are never sealed: no hashing (bench db only)
 *   sync_commit_off   synchronous_commit=off on the bench database: commits do not wait for the WAL flush
 *   no_telemetry      OTEL_SDK_DISABLED=true in the apps: no spans recorded at all
 *   quiet_logs        LOG_LEVEL=warn in the apps: no per-request log line
 *   no_callbacks      the sandbox holds its status callbacks for an hour: no inbound webhooks during the run
 */
export const EXPERIMENTS = (process.env.BENCH_EXPERIMENT ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const KNOWN_EXPERIMENTS = ['unchained_audit', 'sync_commit_off', 'no_telemetry', 'quiet_logs', 'no_callbacks'];
for (const name of EXPERIMENTS) {
  if (!KNOWN_EXPERIMENTS.includes(name)) throw new Error(`unknown BENCH_EXPERIMENT ${name}; known: ${KNOWN_EXPERIMENTS.join(', ')}`);
}

const started = Date.now();
/** Progress goes to stderr; stdout carries the JSON result only. */
export function log(message) {
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The key ring the apps build from the same variables. */
export function benchKeyRing() {
  const { loadConfig } = dist('libs/common/src/config/config');
  const { KeyRing } = dist('libs/common/src/crypto/key-ring');
  const config = loadConfig({ NODE_ENV: 'production', TWILIO_SANDBOX: '1', PHI_ENCRYPTION_KEYS, PHI_INDEX_KEY });
  return new KeyRing(config.phi.keys, config.phi.indexKey);
}

export const round = (value, digits = 3) => (value === null || value === undefined || !Number.isFinite(value) ? null : Number(value.toFixed(digits)));

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * A time zone whose local clock is well inside the 00:00–23:59 sending window for the next `minutes`, so a
 * benchmark's sends are never held for the one quiet minute.
 */
export function openTimeZone(minutes = 30) {
  const zones = ['America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Europe/London', 'Asia/Tokyo', 'Australia/Sydney'];
  for (const zone of zones) {
    const parts = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date());
    const minute = Number(parts.find((p) => p.type === 'hour').value) * 60 + Number(parts.find((p) => p.type === 'minute').value);
    if (minute >= 5 && minute + minutes < 23 * 60 + 59) return zone;
  }
  return zones[0];
}
