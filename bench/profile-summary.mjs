// Summarises a V8 .cpuprofile (from BENCH_APP_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'): where the time went,
// by package / source file (self time) and by function (self and inclusive). Usage: node bench/profile-summary.mjs FILE [top]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [top]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map();
for (let i = 0; i < profile.samples.length; i += 1) {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
}
// Off-CPU samples (idle, or blocked in a socket write while the 2 cores were busy elsewhere) are left out.
for (const [id] of self) {
  const name = nodes.get(id).callFrame.functionName;
  if (name === '(idle)' || name === 'writev' || name === '(program)') self.delete(id);
}
const total = [...self.values()].reduce((a, b) => a + b, 0);

/** First rule whose pattern matches a frame anywhere on the sample's stack names the activity. */
const ACTIVITIES = [
  ['outbound provider call (twilio client, axios, http)', /twilio\.provider\.js|node_modules\/twilio\//],
  ['inbound HTTP requests (status callbacks): express, Nest, guards, pino-http', /parserOnIncoming|status-webhook|@nestjs\/platform-express/],
  ['delivery service (decisions, templates, crypto) and its queries', /delivery\.(service|processor)\.js/],
  ['BullMQ (producer addBulk, worker loop)', /node_modules\/bullmq\//],
  ['pg: reading and parsing results', /node_modules\/pg(-protocol)?\//],
  ['ioredis: reading and parsing replies', /node_modules\/ioredis\//],
  ['garbage collection', /\(garbage collector\)/],
];
const byActivity = new Map();
for (const [id, t] of self) {
  let activity = 'other';
  const stack = [];
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const f = nodes.get(cur).callFrame;
    stack.push(`${f.url} ${f.functionName}`);
  }
  for (const [name, pattern] of ACTIVITIES) {
    if (stack.some((frame) => pattern.test(frame))) {
      activity = name;
      break;
    }
  }
  byActivity.set(activity, (byActivity.get(activity) ?? 0) + t);
}

const where = (frame) => {
  const url = frame.url || '';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes('/dist/')) return url.slice(url.indexOf('/dist/') + 1);
  if (url.startsWith('node:')) return url;
  return url || `(${frame.functionName || 'native'})`;
};
const byWhere = new Map();
const byFn = new Map();
const inclusive = new Map();
for (const [id, t] of self) {
  const frame = nodes.get(id).callFrame;
  const w = where(frame);
  byWhere.set(w, (byWhere.get(w) ?? 0) + t);
  const fn = `${frame.functionName || '(anonymous)'} ${w}:${frame.lineNumber + 1}`;
  byFn.set(fn, (byFn.get(fn) ?? 0) + t);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const f = nodes.get(cur).callFrame;
    const key = `${f.functionName || '(anonymous)'} ${where(f)}:${f.lineNumber + 1}`;
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + t);
  }
}
const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
const show = (title, map) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, t] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(t)}  ${k}\n`);
};
process.stdout.write(`on-CPU samples ${(total / 1e6).toFixed(2)} s\n`);
show('by activity (what the stack of each sample is doing)', byActivity);
show('self time by package / file', byWhere);
show('self time by function', byFn);
show('inclusive time by function', inclusive);
