import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import twilio from 'twilio';

/**
 * Accepts a webhook only with a valid X-Twilio-Signature: an HMAC of the public URL Twilio called plus the
 * posted form fields, under the account's auth token. A forged or unsigned request changes nothing.
 */
@Injectable()
export abstract class TwilioSignatureGuard implements CanActivate {
  protected abstract authToken(): string;
  /** The base URL as Twilio sees this app (the signature covers it). */
  protected abstract publicBaseUrl(): string;

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<Request>();
    const signature = request.header('x-twilio-signature');
    const params: Record<string, string> =
      request.body && typeof request.body === 'object' && !Array.isArray(request.body)
        ? (request.body as Record<string, string>)
        : {};
    const url = this.publicBaseUrl() + request.originalUrl;
    if (!signature || !twilio.validateRequest(this.authToken(), signature, url, params)) {
      throw new ForbiddenException('invalid or missing X-Twilio-Signature');
    }
    return true;
  }
}
