import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } from '../../libs/common/src/config/config';
import { startSandbox, type Sandbox } from '../../tools/twilio-sandbox/src/sandbox';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from './config';
import { createTestDatabase, type TestDatabase } from './database';
import { freePort, waitFor } from './wait';

const ROOT = join(__dirname, '../..');
const ENTRIES = {
  sandbox: 'dist/tools/twilio-sandbox/src/main.js',
  'consent-api': 'dist/apps/consent-api/src/main.js',
  scheduler: 'dist/apps/scheduler/src/main.js',
  dispatcher: 'dist/apps/dispatcher/src/main.js',
  cli: 'dist/apps/cli/src/main.js',
} as const;

/** The apps a stack runs as processes (the sandbox too, unless it runs in-process). */
export type ProcessKind = 'sandbox' | 'consent-api' | 'scheduler' | 'dispatcher';
/** The apps that may run as several replicas. */
export type ReplicaKind = 'scheduler' | 'dispatcher';

const PORT_VARIABLE: Record<ProcessKind, string> = {
  sandbox: 'TWILIO_SANDBOX_PORT',
  'consent-api': 'CONSENT_API_PORT',
  scheduler: 'SCHEDULER_PORT',
  dispatcher: 'DISPATCHER_PORT',
};

export interface StackOptions {
  /** Dispatcher replicas, each a process on its own port. Default 1. */
  dispatchers?: number;
  /** Scheduler replicas, each a process on its own port. Default 1. */
  schedulers?: number;
  /**
   * `process` (default): the Twilio sandbox runs as its own process, read over HTTP. `in-process`: it runs inside
   * the test process and `stack.sandbox` reads and steers it directly.
   */
  sandbox?: 'process' | 'in-process';
  /**
   * Puts a small round-robin HTTP balancer in front of the dispatchers and makes it their public URL, as a
   * deployment's load balancer would be: Twilio's status callbacks reach whichever replica is alive, so killing
   * or replacing one does not strand them, and a replica asked to stop (SIGTERM) gets no new requests.
   * Default false (the first dispatcher is the public URL).
   */
  balancer?: boolean;
  /** How long each process may take to become healthy, at start and on (re)start. Default 20 s (30 s on restart). */
  bootTimeoutMs?: number;
}

/** One process of the stack, by name: `dispatcher`, `dispatcher-2`, ..., `scheduler`, `scheduler-2`, `consent-api`, `sandbox`. */
export interface StackProcess {
  name: string;
  kind: ProcessKind;
  url: string;
  pid: number | undefined;
  running: boolean;
}

export interface Stack {
  /** `dispatcher` and `scheduler` are the first replicas; `dispatchers` and `schedulers` list every replica started. */
  urls: {
    consentApi: string;
    scheduler: string;
    dispatcher: string;
    sandbox: string;
    schedulers: string[];
    dispatchers: string[];
  };
  env: Record<string, string>;
  database: TestDatabase;
  /** The sandbox, when it runs in-process (`sandbox: 'in-process'`); null otherwise. */
  sandbox: Sandbox | null;
  /** Everything the apps printed, for assertions about what logs must never hold. */
  logs(): string;
  cli(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Every process the stack has started (stopped ones included). */
  processes(): StackProcess[];
  /**
   * Sends `signal` (default SIGKILL) to one process and waits until it has exited; SIGKILL follows after `graceMs`
   * (default 30 s). Resolves with how it ended (`signal` is SIGKILL when the grace ran out).
   */
  kill(name: string, signal?: NodeJS.Signals, graceMs?: number): Promise<ProcessExit>;
  /** Starts a stopped process again, same name, port and environment, and waits until it is healthy. */
  start(name: string): Promise<void>;
  /** Kills one process with SIGKILL, starts it again and waits until it is healthy. */
  restart(name: string): Promise<void>;
  /** Starts one more replica on a new port and waits until it is healthy; returns its name. */
  add(kind: ReplicaKind): Promise<string>;
  stop(): Promise<void>;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From the signal to the exit. */
  ms: number;
}

interface Managed {
  name: string;
  kind: ProcessKind;
  port: number;
  url: string;
  child: ChildProcess | null;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Asked to stop: the balancer sends it nothing more, as a load balancer drops a terminating instance. */
  draining: boolean;
}

/** The whole product as separate processes from the built output, wired together over HTTP only. */
export async function startStack(
  overrides: Record<string, string> = {},
  options: StackOptions = {},
): Promise<Stack> {
  for (const entry of Object.values(ENTRIES)) {
    if (!existsSync(join(ROOT, entry)))
      throw new Error(`${entry} is missing: run \`npm run build\` (npm test does)`);
  }
  const dispatcherCount = Math.max(1, options.dispatchers ?? 1);
  const schedulerCount = Math.max(1, options.schedulers ?? 1);
  const database = await createTestDatabase();
  // Every port in one batch, each held until all are known, so no two processes of the stack are given the same one.
  const [consentPort, sandboxPort, balancerPort, ...replicaPorts] = await distinctPorts(
    3 + schedulerCount + dispatcherCount,
  );
  const schedulerPorts = replicaPorts.slice(0, schedulerCount);
  const dispatcherPorts = replicaPorts.slice(schedulerCount);
  const usedPorts = new Set([consentPort, sandboxPort, balancerPort, ...replicaPorts]);
  const local = (port: number) => `http://127.0.0.1:${port}`;
  const urls = {
    consentApi: local(consentPort),
    scheduler: local(schedulerPorts[0]),
    dispatcher: local(dispatcherPorts[0]),
    sandbox: local(sandboxPort),
    schedulers: schedulerPorts.map(local),
    dispatchers: dispatcherPorts.map(local),
  };
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    QUEUE_PREFIX: `rxe-${Math.random().toString(36).slice(2, 8)}`,
    PHI_ENCRYPTION_KEYS: TEST_PHI_KEYS,
    PHI_INDEX_KEY: TEST_INDEX_KEY,
    CONSENT_API_PORT: String(consentPort),
    SCHEDULER_PORT: String(schedulerPorts[0]),
    DISPATCHER_PORT: String(dispatcherPorts[0]),
    TWILIO_SANDBOX_PORT: String(sandboxPort),
    CONSENT_API_PUBLIC_URL: urls.consentApi,
    DISPATCHER_PUBLIC_URL: options.balancer ? local(balancerPort) : urls.dispatcher,
    TWILIO_API_BASE_URL: urls.sandbox,
    TWILIO_ACCOUNT_SID: SANDBOX_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: SANDBOX_AUTH_TOKEN,
    LOG_LEVEL: 'info',
    ...overrides,
  };
  let output = '';
  const managed: Managed[] = [];

  const launch = (proc: Managed) => {
    const child = spawn(process.execPath, [join(ROOT, ENTRIES[proc.kind])], {
      cwd: ROOT,
      env: { ...env, [PORT_VARIABLE[proc.kind]]: String(proc.port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output += `[${proc.name}] ${chunk.toString()}`));
    child.stderr?.on('data', (chunk: Buffer) => (output += `[${proc.name}] ${chunk.toString()}`));
    proc.child = child;
    proc.draining = false;
    proc.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  };
  const register = (kind: ProcessKind, port: number, name: string): Managed => {
    const proc: Managed = {
      name,
      kind,
      port,
      url: local(port),
      child: null,
      exited: Promise.resolve({ code: null, signal: null }),
      draining: false,
    };
    managed.push(proc);
    launch(proc);
    return proc;
  };
  const isRunning = (proc: Managed) =>
    proc.child !== null && proc.child.exitCode === null && proc.child.signalCode === null;
  const healthy = async (proc: Managed, timeoutMs = options.bootTimeoutMs ?? 30000) => {
    if (proc.kind === 'sandbox') {
      await waitFor(proc.name, async () => (await fetch(`${proc.url}/sandbox/messages`)).ok, timeoutMs);
    } else {
      await waitFor(
        `${proc.name} ${proc.url}/health`,
        async () => {
          if (!isRunning(proc)) throw new Error(`${proc.name} exited`);
          return (await fetch(`${proc.url}/health`)).status === 200;
        },
        timeoutMs,
      );
    }
  };
  const named = (name: string) => {
    const proc = managed.find((p) => p.name === name);
    if (!proc) throw new Error(`no process named ${name}; have ${managed.map((p) => p.name).join(', ')}`);
    return proc;
  };
  const kill = async (
    name: string,
    signal: NodeJS.Signals = 'SIGKILL',
    graceMs = 30000,
  ): Promise<ProcessExit> => {
    const proc = named(name);
    const started = Date.now();
    if (!isRunning(proc) || !proc.child) return { ...(await proc.exited), ms: 0 };
    const child = proc.child;
    const timer = signal === 'SIGKILL' ? null : setTimeout(() => child.kill('SIGKILL'), graceMs);
    proc.draining = true;
    child.kill(signal);
    const exit = await proc.exited;
    if (timer) clearTimeout(timer);
    return { ...exit, ms: Date.now() - started };
  };
  const cli = (...args: string[]) => {
    const result = spawnSync(process.execPath, [join(ROOT, ENTRIES.cli), ...args], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  let balancer: Server | null = null;
  if (options.balancer) {
    balancer = startBalancer(() =>
      managed.filter((p) => p.kind === 'dispatcher' && isRunning(p) && !p.draining).map((p) => p.port),
    );
    await new Promise<void>((resolve, reject) => {
      balancer?.once('error', reject);
      balancer?.listen(balancerPort, '127.0.0.1', () => resolve());
    });
  }

  let sandbox: Sandbox | null = null;
  try {
    if (options.sandbox === 'in-process') {
      sandbox = await startSandbox({
        port: sandboxPort,
        accountSid: SANDBOX_ACCOUNT_SID,
        authToken: SANDBOX_AUTH_TOKEN,
        consentApiUrl: urls.consentApi,
      });
    } else {
      register('sandbox', sandboxPort, 'sandbox');
    }
    register('consent-api', consentPort, 'consent-api');
    schedulerPorts.forEach((port, i) =>
      register('scheduler', port, i === 0 ? 'scheduler' : `scheduler-${i + 1}`),
    );
    dispatcherPorts.forEach((port, i) =>
      register('dispatcher', port, i === 0 ? 'dispatcher' : `dispatcher-${i + 1}`),
    );
    for (const proc of managed.filter((p) => p.kind !== 'sandbox'))
      await healthy(proc, options.bootTimeoutMs ?? 20000);
    for (const proc of managed.filter((p) => p.kind === 'sandbox'))
      await healthy(proc, options.bootTimeoutMs ?? 10000);
  } catch (error) {
    managed.forEach((proc) => proc.child?.kill('SIGKILL'));
    await sandbox?.close();
    balancer?.close();
    await database.drop();
    throw new Error(
      `${error instanceof Error ? error.message : String(error)}\n--- app output ---\n${output}`,
    );
  }

  return {
    urls,
    env,
    database,
    sandbox,
    logs: () => output,
    cli,
    processes: () =>
      managed.map((p) => ({
        name: p.name,
        kind: p.kind,
        url: p.url,
        pid: p.child?.pid,
        running: isRunning(p),
      })),
    kill,
    async start(name: string) {
      const proc = named(name);
      if (isRunning(proc)) throw new Error(`${name} is running`);
      launch(proc);
      await healthy(proc);
    },
    async restart(name: string) {
      await kill(name, 'SIGKILL');
      const proc = named(name);
      launch(proc);
      await healthy(proc);
    },
    async add(kind: ReplicaKind) {
      let port = await freePort();
      while (usedPorts.has(port)) port = await freePort();
      usedPorts.add(port);
      const name = `${kind}-${managed.filter((p) => p.kind === kind).length + 1}`;
      const proc = register(kind, port, name);
      urls[kind === 'dispatcher' ? 'dispatchers' : 'schedulers'].push(proc.url);
      await healthy(proc);
      return name;
    },
    async stop() {
      await Promise.all(managed.map((proc) => kill(proc.name, 'SIGTERM', 5000)));
      await sandbox?.close();
      if (balancer) {
        balancer.closeAllConnections();
        await new Promise<void>((resolve) => balancer?.close(() => resolve()));
      }
      await database.drop();
    },
  };
}

/** `count` free ports, all different: each is held open until every one is known. */
async function distinctPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  });
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

/**
 * Forwards each request to one of `targets()` in turn (a body is buffered, so a refused connection is tried on
 * the next target); 502 when none answers.
 */
function startBalancer(targets: () => number[]): Server {
  let next = 0;
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const ports = targets();
      const attempt = (tried: number) => {
        if (tried >= ports.length) {
          res.writeHead(502).end();
          return;
        }
        const port = ports[next++ % ports.length];
        const upstream = request(
          { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', () => {
          if (!res.headersSent) attempt(tried + 1);
          else res.destroy();
        });
        upstream.end(body);
      };
      attempt(0);
    });
  });
}

/** A small JSON client for one app, speaking as one API key. */
export function client(baseUrl: string, key?: string) {
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(baseUrl + path, {
      method,
      headers: {
        ...(key ? { Authorization: `Bearer ${key}` } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json: unknown = text;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: keep the text */
    }
    return { status: response.status, body: json as never, text };
  };
  return {
    get: (path: string) => call('GET', path),
    post: (path: string, body?: unknown) => call('POST', path, body ?? {}),
    put: (path: string, body: unknown) => call('PUT', path, body),
    patch: (path: string, body: unknown) => call('PATCH', path, body),
  };
}
