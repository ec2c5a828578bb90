// `npm start`: build if needed, migrate, then run the three apps (and the Twilio sandbox when no Twilio
// credentials are set) in this terminal with prefixed output. Ctrl-C stops them all.
import { spawn, spawnSync } from 'node:child_process';
import { ensureBuilt } from './ensure-built.mjs';

const root = new URL('..', import.meta.url).pathname;
ensureBuilt();

const migrate = spawnSync(process.execPath, ['dist/apps/cli/src/main.js', 'migrate'], { cwd: root, stdio: 'inherit' });
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const processes = [
  ['consent-api', 'dist/apps/consent-api/src/main.js'],
  ['scheduler', 'dist/apps/scheduler/src/main.js'],
  ['dispatcher', 'dist/apps/dispatcher/src/main.js'],
];
if (!process.env.TWILIO_ACCOUNT_SID) processes.unshift(['sandbox', 'dist/tools/twilio-sandbox/src/main.js']);

// The apps' stdout is a pipe to this script, so they cannot see the terminal: say it for them.
const env = { ...process.env };
if (process.stdout.isTTY && !env.LOG_FORMAT) env.LOG_FORMAT = 'pretty';

const width = Math.max(...processes.map(([name]) => name.length));
const children = [];
let stopping = false;

function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  setTimeout(() => process.exit(code), 10_000).unref();
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null))).then(() => process.exit(code));
}

for (const [name, entry] of processes) {
  const child = spawn(process.execPath, ['--enable-source-maps', entry], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `${name.padEnd(width)} | `;
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.on('data', (chunk) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) process.stdout.write(prefix + line + '\n');
    });
  }
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stdout.write(`${prefix}exited (${signal ?? code}); stopping everything\n`);
      stopAll(code || 1);
    }
  });
  children.push(child);
}

process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
