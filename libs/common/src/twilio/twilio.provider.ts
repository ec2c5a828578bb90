import * as http from 'node:http';
import twilio from 'twilio';
import type BaseRequestClient from 'twilio/lib/base/RequestClient';
import type TwilioResponse from 'twilio/lib/http/response';
import type { AppConfig } from '../config/config';
import {
  classifyProviderFailure,
  PROVIDER_REQUEST_TIMEOUT_MS,
  ProviderError,
  SmsProvider,
  type OutboundCall,
  type OutboundSms,
  type ProviderReceipt,
  type SentQuery,
} from './sms-provider';

const TWILIO_ORIGIN = 'https://api.twilio.com';

/** Sends every REST call to `TWILIO_API_BASE_URL` (the sandbox, or a test double) over kept-alive sockets. */
class RedirectingRequestClient extends twilio.RequestClient {
  constructor(private readonly baseUrl: string) {
    super({ keepAlive: true, timeout: PROVIDER_REQUEST_TIMEOUT_MS });
    // twilio only configures an https agent; a plain-http sandbox would otherwise open a socket per request.
    this.axios.defaults.httpAgent = new http.Agent({ keepAlive: true });
  }

  override request<TData>(opts: BaseRequestClient.RequestOptions<TData>): Promise<TwilioResponse<TData>> {
    const uri = opts.uri.startsWith(TWILIO_ORIGIN)
      ? this.baseUrl + opts.uri.slice(TWILIO_ORIGIN.length)
      : opts.uri;
    return super.request<TData>({ ...opts, uri });
  }
}

export class TwilioProvider extends SmsProvider {
  private readonly client: twilio.Twilio;

  constructor(config: AppConfig['twilio']) {
    super();
    const httpClient =
      config.apiBaseUrl === TWILIO_ORIGIN
        ? new twilio.RequestClient({ keepAlive: true, timeout: PROVIDER_REQUEST_TIMEOUT_MS })
        : new RedirectingRequestClient(config.apiBaseUrl);
    this.client = twilio(config.accountSid, config.authToken, { httpClient });
  }

  async sendSms(message: OutboundSms): Promise<ProviderReceipt> {
    try {
      const created = await this.client.messages.create({
        to: message.to,
        from: message.from,
        body: message.body,
        statusCallback: message.statusCallback,
      });
      return { sid: created.sid, status: created.status };
    } catch (error) {
      throw toProviderError(error);
    }
  }

  async findSent(query: SentQuery): Promise<ProviderReceipt[]> {
    const since = new Date(query.since.getTime() - MATCH_SLACK_MS);
    const oldestFirst = <T extends { dateCreated?: Date | null }>(items: T[]) =>
      items
        .filter((item) => !item.dateCreated || item.dateCreated >= since)
        .sort((x, y) => (x.dateCreated?.getTime() ?? 0) - (y.dateCreated?.getTime() ?? 0));
    try {
      if (query.channel === 'sms') {
        const found = await this.client.messages.list({
          to: query.to,
          from: query.from,
          dateSentAfter: since,
          limit: 100,
        });
        return oldestFirst(found.filter((m) => m.body === query.body)).map((m) => ({
          sid: m.sid,
          status: m.status,
        }));
      }
      const calls = await this.client.calls.list({
        to: query.to,
        from: query.from,
        startTimeAfter: since,
        limit: 20,
      });
      return oldestFirst(calls).map((c) => ({ sid: c.sid, status: c.status }));
    } catch (error) {
      throw toProviderError(error);
    }
  }

  async placeCall(call: OutboundCall): Promise<ProviderReceipt> {
    try {
      const created = await this.client.calls.create({
        to: call.to,
        from: call.from,
        twiml: call.twiml,
        statusCallback: call.statusCallback,
        statusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
        machineDetection: 'DetectMessageEnd',
        // Inline TwiML cannot branch on AnsweredBy: the verdict arrives asynchronously and a voicemail's
        // call is then updated to play the message without the menu.
        asyncAmd: 'true',
        asyncAmdStatusCallback: call.amdStatusCallback,
        asyncAmdStatusCallbackMethod: 'POST',
      });
      return { sid: created.sid, status: created.status };
    } catch (error) {
      throw toProviderError(error);
    }
  }

  async updateCall(sid: string, twiml: string): Promise<void> {
    try {
      await this.client.calls(sid).update({ twiml });
    } catch (error) {
      throw toProviderError(error);
    }
  }
}

/** Clock skew allowed between us and the provider when matching a lost attempt. */
const MATCH_SLACK_MS = 120_000;

function toProviderError(error: unknown): ProviderError {
  if (error instanceof twilio.RestException) {
    const code = typeof error.code === 'number' ? error.code : null;
    return new ProviderError(
      classifyProviderFailure(error.status, code),
      code,
      error.status,
      `Twilio answered ${error.status} (code ${code ?? 'none'})`,
    );
  }
  // No HTTP answer at all: a network fault, retried.
  const name = error instanceof Error ? error.name : 'unknown';
  return new ProviderError('retryable', null, null, `Twilio unreachable (${name})`);
}
