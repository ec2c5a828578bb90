import { BadRequestException, Controller, HttpCode, Inject, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiConsumes, ApiOkResponse, ApiProduces, ApiTags } from '@nestjs/swagger';
import { Public } from '@rxnotify/common/auth/api-key.guard';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { readTwilioForm } from '@rxnotify/common/twilio/twilio-form';
import type { Request, Response } from 'express';
import { InboundSmsService } from './inbound-sms.service';
import { gatherTwiml, messagingTwiml } from './twiml';
import { ConsentApiSignatureGuard } from './twilio-signature.guard';
import { VoiceGatherService } from './voice-gather.service';

export const GATHER_PATH = '/webhooks/twilio/voice/gather';

// Twilio's own sids are two letters and 32 hex digits; anything close enough, and short, is accepted.
const SID = /^[A-Za-z]{2}[A-Za-z0-9]{1,62}$/;

/** Twilio's callbacks: no API key (they are @Public), a valid Twilio signature instead. */
@ApiTags('twilio webhooks')
@ApiConsumes('application/x-www-form-urlencoded')
@ApiProduces('text/xml')
@Public()
@UseGuards(ConsentApiSignatureGuard)
@Controller('webhooks/twilio')
export class TwilioWebhooksController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly inboundSms: InboundSmsService,
    private readonly voiceGather: VoiceGatherService,
  ) {}

  @Post('sms')
  @HttpCode(200)
  @ApiOkResponse({ description: 'TwiML: a confirmation <Message>, or an empty <Response/>' })
  async sms(@Req() request: Request, @Res({ passthrough: true }) response: Response): Promise<string> {
    const form = readTwilioForm(request, ['MessageSid', 'From', 'To'], ['Body']);
    const reply = await this.inboundSms.receive({
      messageSid: sid(form.MessageSid, 'MessageSid'),
      from: form.From,
      to: form.To,
      body: form.Body,
    });
    response.type('text/xml');
    return messagingTwiml(reply);
  }

  @Post('voice/gather')
  @HttpCode(200)
  @ApiOkResponse({ description: 'TwiML: the opt-out confirmation, the menu once more, or goodbye' })
  async gather(@Req() request: Request, @Res({ passthrough: true }) response: Response): Promise<string> {
    const form = readTwilioForm(request, ['CallSid', 'From', 'To'], ['Digits']);
    const outcome = await this.voiceGather.gather({
      callSid: sid(form.CallSid, 'CallSid'),
      from: form.From,
      to: form.To,
      digits: form.Digits,
      retry: request.query.retry === '1',
    });
    response.type('text/xml');
    return gatherTwiml(outcome, `${this.config.publicUrls.consentApi}${GATHER_PATH}?retry=1`);
  }
}

function sid(value: string, field: string): string {
  if (!SID.test(value)) throw new BadRequestException([`${field} is not a Twilio sid`]);
  return value;
}
