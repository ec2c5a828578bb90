import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { TwilioSignatureGuard } from '@rxnotify/common/twilio/twilio-signature.guard';

/** Twilio signs the consent-api's public URL, as configured in CONSENT_API_PUBLIC_URL. */
@Injectable()
export class ConsentApiSignatureGuard extends TwilioSignatureGuard {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    super();
  }
  protected authToken(): string {
    return this.config.twilio.authToken;
  }
  protected publicBaseUrl(): string {
    return this.config.publicUrls.consentApi;
  }
}
