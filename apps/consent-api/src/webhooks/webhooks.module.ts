import { Module } from '@nestjs/common';
import { ConsentModule } from '../consent/consent.module';
import { InboundSmsService } from './inbound-sms.service';
import { ConsentApiSignatureGuard } from './twilio-signature.guard';
import { TwilioWebhooksController } from './twilio-webhooks.controller';
import { VoiceGatherService } from './voice-gather.service';

@Module({
  imports: [ConsentModule],
  controllers: [TwilioWebhooksController],
  providers: [InboundSmsService, VoiceGatherService, ConsentApiSignatureGuard],
})
export class WebhooksModule {}
