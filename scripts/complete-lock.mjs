// Completes package-lock.json with the other platforms' optional native packages (@swc/core-darwin-arm64,
// msgpackr-extract-win32-x64, ...). The npm registry this project is developed against serves only this
// machine's platform builds, so `npm install` cannot record the others, and `npm ci` then refuses the lock
// as out of sync. Each entry written here carries its os/cpu, so npm ci skips it on any other platform
// without fetching it, exactly as it would with a lock written against the full registry.
// Run after `npm install <something>`: node scripts/complete-lock.mjs
import { readFileSync, writeFileSync } from 'node:fs';
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const platform = (name) => {
  const m = /(darwin|linux|win32|freebsd|android|openbsd|sunos|aix)-(x64|arm64|arm|ia32|ppc64|s390x|riscv64|loong64)/.exec(name);
  return m ? { os: [m[1]], cpu: [m[2]] } : null;
};
let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  if (!path) continue;
  const optional = entry.optionalDependencies ?? {};
  for (const [dep, range] of Object.entries(optional)) {
    const target = `node_modules/${dep}`;
    if (lock.packages[target] || lock.packages[`${path}/node_modules/${dep}`]) continue;
    const p = platform(dep);
    if (!p) continue;
    lock.packages[target] = { version: range.replace(/^[\^~=]/, ''), ...(entry.dev ? { dev: true } : {}), optional: true, ...p };
    added++;
  }
}
writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
console.log(`added ${added}`);
