import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freePort, waitFor } from '../helpers/wait';

const ROOT = join(__dirname, '..', '..');

/** The README's worked example: the first bash block after its heading, as a new user would paste it. */
function workedExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## A worked example'));
  const block = /```bash\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('README.md has no bash block under "A worked example"');
  return block[1];
}

/**
 * `npm start` as a new user runs it (no Twilio credentials, so the sandbox; NODE_ENV unset, so development), and
 * the README's worked example pasted into bash against it. Only the ports are moved to free ones, so that the test
 * never meets a developer's own `npm start`.
 */
describe('the README worked example against npm start', () => {
  let db: TestDatabase;
  let start: ChildProcess;
  let output = '';
  const ports = { consentApi: 0, scheduler: 0, dispatcher: 0, sandbox: 0 };
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDatabase();
    ports.consentApi = await freePort();
    ports.scheduler = await freePort();
    ports.dispatcher = await freePort();
    ports.sandbox = await freePort();
    env = { ...process.env };
    for (const name of Object.keys(env)) {
      if (name.startsWith('TWILIO_') || name.startsWith('OTEL_') || name === 'NODE_ENV') delete env[name];
    }
    Object.assign(env, {
      DATABASE_URL: db.url,
      QUEUE_PREFIX: `rxn-readme-${Date.now().toString(36)}`,
      CONSENT_API_PORT: String(ports.consentApi),
      SCHEDULER_PORT: String(ports.scheduler),
      DISPATCHER_PORT: String(ports.dispatcher),
      TWILIO_SANDBOX_PORT: String(ports.sandbox),
      LOG_LEVEL: 'warn',
    });
    start = spawn(process.execPath, ['scripts/start.mjs'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [start.stdout, start.stderr]) stream?.on('data', (chunk) => (output += chunk));
    await waitFor(
      'npm start to serve all four processes',
      async () => {
        const answers = await Promise.all(
          [ports.consentApi, ports.scheduler, ports.dispatcher].map((port) =>
            fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok),
          ),
        );
        const sandbox = await fetch(`http://127.0.0.1:${ports.sandbox}/sandbox/messages`).then((r) => r.ok);
        return answers.every(Boolean) && sandbox;
      },
      60_000,
    );
  }, 90_000);

  afterAll(async () => {
    if (start && start.exitCode === null) {
      start.kill('SIGINT');
      await new Promise((resolve) => start.once('exit', resolve));
    }
    await db?.drop();
  }, 30_000);

  it('texts the patient once, confirms STOP and suppresses the next notice, as the README says', () => {
    const script = workedExample()
      .replaceAll('localhost:3000', `localhost:${ports.consentApi}`)
      .replaceAll('localhost:3001', `localhost:${ports.scheduler}`)
      .replaceAll('localhost:3002', `localhost:${ports.dispatcher}`)
      .replaceAll('localhost:4010', `localhost:${ports.sandbox}`);
    const run = spawnSync('bash', ['-c', script], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    const printed = run.stdout;
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });

    // Step 7: the one text, from the pharmacy's number, naming no drug; the notification delivered.
    expect(printed).toContain(
      'Main Street Pharmacy: Your prescription is ready for pickup. Questions? Call +14155550199. Reply STOP to opt out.',
    );
    expect(printed).toContain('"from":"+14155550100"');
    expect(printed).toContain('"state":"delivered"');
    expect(printed).not.toContain('Lisinopril');
    // Step 8: one TwiML confirmation; step 9: the next notice suppressed.
    expect(printed.match(/<Message>/g)).toHaveLength(1);
    expect(printed).toMatch(/\bsuppressed opted_out\n/);
    // Step 10: the consent history and the access log.
    expect(printed).toContain('"status":"opted_out","source":"sms_keyword"');
    expect(printed).toContain('"action":"consent.read"');
  }, 90_000);

  it('stops every process on Ctrl-C', async () => {
    start.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => start.once('exit', resolve));
    expect(code).toBe(0);
    for (const port of Object.values(ports)) {
      await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    }
    expect(output).not.toMatch(/exited \((?!SIGTERM|0)/);
  }, 30_000);
});
