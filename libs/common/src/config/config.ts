import { z } from 'zod';

/** The sandbox credentials used when no Twilio account is configured (development and tests). */
export const SANDBOX_ACCOUNT_SID = 'AC00000000000000000000000000000000';
export const SANDBOX_AUTH_TOKEN = 'sandbox-auth-token';
export const SANDBOX_DEFAULT_PORT = 4010;

// Fixed keys so a developer can run the stack without generating any. Never accepted outside development.
const DEV_PHI_KEYS = 'dev1:ZGV2LW9ubHktcGhpLWtleS1kby1ub3QtdXNlLTMyYiE=';
const DEV_INDEX_KEY = 'ZGV2LW9ubHktYmxpbmQtaW5kZXgta2V5LWRvLW5vdCE=';

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine(
      (value) => protocols.some((p) => value.startsWith(`${p}://`)),
      `must be a ${protocols.join(' or ')} URL`,
    );

const base64Key = z
  .string()
  .refine((value) => Buffer.from(value, 'base64').length === 32, 'must be 32 bytes, base64-encoded');

const keyRing = z.string().transform((value, ctx) => {
  const keys: PhiKey[] = [];
  for (const entry of value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const separator = entry.indexOf(':');
    const id = entry.slice(0, separator);
    const material = Buffer.from(entry.slice(separator + 1), 'base64');
    if (separator < 1 || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || material.length !== 32) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'each entry must be keyId:base64(32 bytes)' });
      return z.NEVER;
    }
    keys.push({ id, key: material });
  }
  if (keys.length === 0) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must hold at least one key' });
    return z.NEVER;
  }
  return keys;
});

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: url(['postgres', 'postgresql']).default('postgres://postgres@127.0.0.1:5432/rxnotify'),
  REDIS_URL: url(['redis', 'rediss']).default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER: z.enum(['0', '1']).optional(),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:{}-]{1,64}$/, 'letters, digits, _ - : { } only')
    .default('rxn'),
  CONSENT_API_PORT: port(3000),
  SCHEDULER_PORT: port(3001),
  DISPATCHER_PORT: port(3002),
  TWILIO_ACCOUNT_SID: z
    .string()
    .regex(/^AC[0-9a-fA-F]{32}$/, 'must be AC followed by 32 hex digits')
    .optional(),
  TWILIO_AUTH_TOKEN: z.string().min(1).optional(),
  TWILIO_API_BASE_URL: url(['http', 'https']).optional(),
  TWILIO_SANDBOX_PORT: port(SANDBOX_DEFAULT_PORT),
  TWILIO_SANDBOX_URL: url(['http', 'https']).optional(),
  // Demo only: lets production run on the built-in sandbox credentials, whose token is public.
  TWILIO_SANDBOX: z.enum(['0', '1']).optional(),
  CONSENT_API_PUBLIC_URL: url(['http', 'https']).optional(),
  DISPATCHER_PUBLIC_URL: url(['http', 'https']).optional(),
  PHI_ENCRYPTION_KEYS: keyRing.optional(),
  PHI_INDEX_KEY: base64Key.optional(),
  SCAN_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86400).default(300),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: url(['http', 'https']).optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(['http/protobuf', 'http/json']).default('http/protobuf'),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  // Retention and rate limits (docs/security.md).
  MESSAGE_BODY_RETENTION_DAYS: z.coerce.number().int().min(1).max(36500).default(90),
  AUDIT_RETENTION_YEARS: z.coerce
    .number()
    .int()
    .max(100)
    .default(6)
    .refine((years) => years >= 6, 'must be at least 6: audit records are kept at least six years'),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
  WEBHOOK_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(60_000),
});

export interface PhiKey {
  id: string;
  key: Buffer;
}

export interface AppConfig {
  env: 'development' | 'production' | 'test';
  database: { url: string };
  /** `cluster`: REDIS_URL names one node of a Redis Cluster, and the client discovers the rest. */
  redis: { url: string; cluster: boolean };
  queue: { prefix: string };
  ports: { consentApi: number; scheduler: number; dispatcher: number };
  publicUrls: { consentApi: string; dispatcher: string };
  twilio: { accountSid: string; authToken: string; apiBaseUrl: string; sandbox: boolean };
  sandbox: { port: number };
  phi: { keys: PhiKey[]; indexKey: Buffer; devKeys: boolean };
  scanIntervalSeconds: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Unset: pretty on a terminal in development, JSON otherwise. */
  logFormat?: 'json' | 'pretty';
  otel: { endpoint?: string; protocol: 'http/protobuf' | 'http/json'; serviceName?: string };
  /** Message bodies are purged after `messageBodyDays`; audit records are never deleted (kept at least `auditYears`). */
  retention: { messageBodyDays: number; auditYears: number };
  /** Requests a minute per API key (else per client IP), and per source IP on the Twilio webhooks. */
  rateLimit: { perMinute: number; webhooksPerMinute: number };
}

/** Raised at boot; its message names every bad variable and never echoes a value. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  // An empty variable means "not set", as docker compose and shells commonly pass them.
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = envSchema.safeParse(present, { errorMap: describeWithoutValue });
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  const sandbox = !e.TWILIO_ACCOUNT_SID && !e.TWILIO_AUTH_TOKEN;
  if (!sandbox && !(e.TWILIO_ACCOUNT_SID && e.TWILIO_AUTH_TOKEN)) {
    problems.push('TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together');
  }
  // The sandbox token is in this repository: with it, anyone can sign a webhook (a forged STOP or delivery report).
  const publicCredentials = sandbox || e.TWILIO_AUTH_TOKEN === SANDBOX_AUTH_TOKEN;
  if (e.NODE_ENV === 'production' && publicCredentials && e.TWILIO_SANDBOX !== '1') {
    problems.push(
      'TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be real Twilio credentials in production ' +
        '(the built-in sandbox credentials are public, so webhook signatures could be forged); ' +
        'set TWILIO_SANDBOX=1 to run on the sandbox anyway (demo only)',
    );
  }
  const devKeys = e.NODE_ENV === 'development' && (!e.PHI_ENCRYPTION_KEYS || !e.PHI_INDEX_KEY);
  if (e.NODE_ENV !== 'development') {
    if (!e.PHI_ENCRYPTION_KEYS) problems.push('PHI_ENCRYPTION_KEYS is required outside development');
    if (!e.PHI_INDEX_KEY) problems.push('PHI_INDEX_KEY is required outside development');
  }
  // BullMQ's scripts touch several keys of one queue at once: on a cluster they must share a hash slot.
  if (e.REDIS_CLUSTER === '1' && !/\{[^{}]+\}/.test(e.QUEUE_PREFIX)) {
    problems.push('QUEUE_PREFIX must hold a hash tag such as {rxn} when REDIS_CLUSTER=1');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    env: e.NODE_ENV,
    database: { url: e.DATABASE_URL },
    redis: { url: e.REDIS_URL, cluster: e.REDIS_CLUSTER === '1' },
    queue: { prefix: e.QUEUE_PREFIX },
    ports: { consentApi: e.CONSENT_API_PORT, scheduler: e.SCHEDULER_PORT, dispatcher: e.DISPATCHER_PORT },
    publicUrls: {
      consentApi: stripSlash(e.CONSENT_API_PUBLIC_URL ?? `http://localhost:${e.CONSENT_API_PORT}`),
      dispatcher: stripSlash(e.DISPATCHER_PUBLIC_URL ?? `http://localhost:${e.DISPATCHER_PORT}`),
    },
    twilio: {
      accountSid: e.TWILIO_ACCOUNT_SID ?? SANDBOX_ACCOUNT_SID,
      authToken: e.TWILIO_AUTH_TOKEN ?? SANDBOX_AUTH_TOKEN,
      apiBaseUrl: stripSlash(
        e.TWILIO_API_BASE_URL ??
          (sandbox
            ? (e.TWILIO_SANDBOX_URL ?? `http://127.0.0.1:${e.TWILIO_SANDBOX_PORT}`)
            : 'https://api.twilio.com'),
      ),
      sandbox,
    },
    sandbox: { port: e.TWILIO_SANDBOX_PORT },
    phi: {
      keys: e.PHI_ENCRYPTION_KEYS ?? keyRing.parse(DEV_PHI_KEYS),
      indexKey: Buffer.from(e.PHI_INDEX_KEY ?? DEV_INDEX_KEY, 'base64'),
      devKeys,
    },
    scanIntervalSeconds: e.SCAN_INTERVAL_SECONDS,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    otel: {
      endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
      protocol: e.OTEL_EXPORTER_OTLP_PROTOCOL,
      serviceName: e.OTEL_SERVICE_NAME,
    },
    retention: { messageBodyDays: e.MESSAGE_BODY_RETENTION_DAYS, auditYears: e.AUDIT_RETENTION_YEARS },
    rateLimit: { perMinute: e.RATE_LIMIT_PER_MINUTE, webhooksPerMinute: e.WEBHOOK_RATE_LIMIT_PER_MINUTE },
  };
}

// zod's default messages quote the received value ("received 'prod'"); a value may be a secret.
const describeWithoutValue: z.ZodErrorMap = (issue, ctx) => {
  switch (issue.code) {
    case z.ZodIssueCode.invalid_enum_value:
      return { message: `must be one of ${issue.options.join(', ')}` };
    case z.ZodIssueCode.invalid_type:
      return { message: `must be a ${issue.expected}` };
    case z.ZodIssueCode.too_small:
    case z.ZodIssueCode.too_big:
      return { message: 'is out of range' };
    case z.ZodIssueCode.invalid_string:
      return { message: issue.validation === 'url' ? 'must be a URL' : 'has an invalid format' };
    default:
      return { message: ctx.defaultError };
  }
};

function stripSlash(value: string): string {
  return value.replace(/\/+$/, '');
}
