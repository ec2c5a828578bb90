// Builds when dist/ is missing or older than any source file. Output goes to stderr so that commands
// whose stdout is read (api-key create prints the key on its last line) stay clean.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const stamp = join(root, 'dist/.tsbuildinfo');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

export function ensureBuilt() {
  const sources = Math.max(...['apps', 'libs', 'tools'].map((d) => newestSource(join(root, d))));
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= sources) return;
  process.stderr.write('building rxnotify...\n');
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] });
  if (result.status !== 0) process.exit(result.status ?? 1);
  const now = new Date();
  utimesSync(stamp, now, now);
}

if (import.meta.url === `file://${process.argv[1]}`) ensureBuilt();
