import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { Params } from 'nestjs-pino';
import type { AppConfig } from './config/config';
import { requestIdOf } from './http/request-id';

/**
 * Paths pino blanks out wherever they appear. Request bodies are never logged at all; these catch the
 * places a phone, name or body could still surface (headers, errors carrying a payload).
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-twilio-signature"]',
  '*.phone',
  '*.to',
  '*.from',
  '*.To',
  '*.From',
  '*.Body',
  '*.body',
  '*.firstName',
  '*.lastName',
  '*.evidence',
];

export function loggerParams(config: AppConfig, app: string): Params {
  return {
    pinoHttp: {
      level: config.logLevel,
      name: app,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
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
