import {
  Controller,
  HttpCode,
  Inject,
  Injectable,
  Post,
  Query,
  Req,
  ServiceUnavailableException,
  UseGuards,
} from '@nestjs/common';
import { ApiExcludeEndpoint, ApiTags } from '@nestjs/swagger';
import { Public } from '@rxnotify/common/auth/api-key.guard';
import type { AppConfig } from '@rxnotify/common/config/config';
import { APP_CONFIG } from '@rxnotify/common/config/config.module';
import { readTwilioForm } from '@rxnotify/common/twilio/twilio-form';
import { TwilioSignatureGuard } from '@rxnotify/common/twilio/twilio-signature.guard';
import type { Request } from 'express';
import { StatusService } from './status.service';
import { VoicemailService } from './voicemail.service';

@Injectable()
export class DispatcherSignatureGuard extends TwilioSignatureGuard {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    super();
  }
  protected authToken(): string {
    return this.config.twilio.authToken;
  }
  protected publicBaseUrl(): string {
    return this.config.publicUrls.dispatcher;
  }
}

/** Twilio's delivery reports. Matched on the attempt id in the callback URL, which may arrive before the create call returns. */
@ApiTags('webhooks')
@Controller('webhooks/twilio')
@UseGuards(DispatcherSignatureGuard)
export class StatusWebhookController {
  constructor(
    private readonly statuses: StatusService,
    private readonly voicemail: VoicemailService,
  ) {}

  @Post('status')
  @Public()
  @HttpCode(200)
  @ApiExcludeEndpoint()
  async messageStatus(
    @Query('attemptId') attemptId: string | undefined,
    @Req() request: Request,
  ): Promise<void> {
    const form = readTwilioForm(
      request,
      [],
      ['MessageStatus', 'SmsStatus', 'MessageSid', 'SmsSid', 'ErrorCode'],
    );
    await this.statuses.apply(
      attemptId,
      form.MessageStatus || form.SmsStatus,
      form.MessageSid || form.SmsSid,
      form.ErrorCode,
    );
  }

  @Post('voice/status')
  @Public()
  @HttpCode(200)
  @ApiExcludeEndpoint()
  async callStatus(
    @Query('attemptId') attemptId: string | undefined,
    @Req() request: Request,
  ): Promise<void> {
    const form = readTwilioForm(request, [], ['CallStatus', 'CallSid', 'ErrorCode']);
    await this.statuses.apply(attemptId, form.CallStatus, form.CallSid, form.ErrorCode);
  }

  /** The asynchronous answering-machine verdict of a call (AsyncAmdStatusCallback). */
  @Post('voice/amd')
  @Public()
  @HttpCode(200)
  @ApiExcludeEndpoint()
  async answeringMachine(
    @Query('attemptId') attemptId: string | undefined,
    @Req() request: Request,
  ): Promise<void> {
    const form = readTwilioForm(request, [], ['CallSid', 'AnsweredBy']);
    const outcome = await this.voicemail.answered(attemptId, form.CallSid, form.AnsweredBy);
    if (outcome === 'retry') throw new ServiceUnavailableException('provider unavailable; post again');
  }
}
