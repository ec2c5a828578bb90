import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { Params } from 'nestjs-pino';
import { stdSerializers } from 'pino';
import type { AppConfig } from './config/config';
import { requestIdOf } from './http/request-id';

/** Header paths pino blanks out: credentials, not PHI (PHI fields are scrubbed by name, below). */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-twilio-signature"]',
];

/**
 * Field names (compared case-insensitively) whose value may be a phone, a name or a message text, at any depth
 * of a logged object. Request bodies are never logged at all; these catch the places PHI could still surface
 * (an object passed to a log call, an error carrying a payload).
 */
const PHI_FIELDS = new Set(
  [
    'phone',
    'phoneNumber',
    'to',
    'from',
    'body',
    'name',
    'firstName',
    'lastName',
    'patientName',
    'message',
    'twiml',
    'evidence',
    'parameters', // a failed query's parameters (TypeORM errors)
  ].map((field) => field.toLowerCase()),
);
const CENSOR = '[redacted]';
/** Deeper than anything rxnotify logs; beyond it a value is dropped rather than walked. */
const MAX_DEPTH = 10;

/**
 * A copy of `value` with every PHI field censored, at every depth of plain objects and arrays. Other objects
 * (a request, a response, an Error) are left to their serializers; the error serializer scrubs its output too.
 * `keep` names fields that stay even though they are PHI fields (an error's own message and stack).
 */
export function scrubPhi(value: unknown, keep: ReadonlySet<string> = new Set(), depth = 0): unknown {
  if (Array.isArray(value)) {
    return depth >= MAX_DEPTH ? CENSOR : value.map((item) => scrubPhi(item, new Set(), depth + 1));
  }
  if (!isPlainObject(value)) return value;
  if (depth >= MAX_DEPTH) return CENSOR;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] =
      PHI_FIELDS.has(key.toLowerCase()) && !keep.has(key) && item !== undefined && item !== null
        ? CENSOR
        : scrubPhi(item, new Set(), depth + 1);
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

const ERROR_OWN_TEXT = new Set(['message', 'stack']);

export function loggerParams(config: AppConfig, app: string): Params {
  return {
    pinoHttp: {
      level: config.logLevel,
      name: app,
      redact: { paths: REDACTED_PATHS, censor: CENSOR },
      formatters: { log: (object: Record<string, unknown>) => scrubPhi(object) as Record<string, unknown> },
      mixin: traceFields,
      genReqId: requestIdOf,
      // Query strings may carry ids but never PHI; log the path only to keep it that way.
      serializers: {
        req: (req: { id: unknown; method: string; url: string }) => ({
          id: req.id,
          method: req.method,
          path: req.url.split('?')[0],
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
        err: (error: Error) => scrubPhi({ ...stdSerializers.err(error) }, ERROR_OWN_TEXT),
      },
      autoLogging: { ignore: (req) => UNLOGGED_PATHS.test(req.url ?? '') },
      // Twilio's delivery reports, two for every text, are each recorded in message_attempts: at info they
      // would be most of the log. Answered 2xx they log at debug; anything else as every other request.
      customLogLevel: (req, res) =>
        res.statusCode < 300 && DELIVERY_REPORTS.test(req.url ?? '') ? 'debug' : 'info',
      transport: pretty(config) ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
    },
  };
}

/** The provider's delivery-status callbacks (texts and calls). */
const DELIVERY_REPORTS = /^\/webhooks\/twilio\/(voice\/)?status(\?|$)/;

/** Probes that arrive every few seconds: logging each would drown the rest. */
const UNLOGGED_PATHS = /^\/(health(\/live|\/ready)?|metrics)(\?|$)/;

/** The active span's ids on every line, so a log line leads to its trace and a trace to its logs. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan()?.spanContext();
  return span && isSpanContextValid(span) ? { trace_id: span.traceId, span_id: span.spanId } : {};
}

/**
 * `LOG_FORMAT=pretty` asks for pino-pretty, `json` for JSON; unset means pretty on a terminal in development.
 * pino-pretty is a development dependency: an image built without it logs JSON whatever is asked.
 */
function pretty(config: AppConfig): boolean {
  const wanted = config.logFormat
    ? config.logFormat === 'pretty'
    : config.env === 'development' && process.stdout.isTTY === true;
  if (!wanted) return false;
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    process.stderr.write('LOG_FORMAT=pretty needs pino-pretty, which is not installed; logging JSON\n');
    return false;
  }
}
