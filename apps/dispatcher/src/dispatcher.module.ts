import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule } from '@nestjs/common';
import type { Clock } from '@rxnotify/common/clock/clock';
import type { AppConfig } from '@rxnotify/common/config/config';
import { CoreModule } from '@rxnotify/common/core.module';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { SmsProvider } from '@rxnotify/common/twilio/sms-provider';
import { TwilioProvider } from '@rxnotify/common/twilio/twilio.provider';
import { DeliveryProcessor } from './delivery/delivery.processor';
import { DeliveryService } from './delivery/delivery.service';
import { SendRateLimiter } from './delivery/send-rate-limiter';
import { NotificationsController } from './notifications/notifications.controller';
import { NotificationsService } from './notifications/notifications.service';
import { ReconcilerService } from './reconciler/reconciler.service';
import { QueuesModule } from './queues/queues.module';
import { DispatcherSignatureGuard, StatusWebhookController } from './webhooks/status-webhook.controller';
import { StatusService } from './webhooks/status.service';
import { VoicemailService } from './webhooks/voicemail.service';

@Module({})
export class DispatcherModule {
  static forRoot(config: AppConfig, options: { clock?: Clock } = {}): DynamicModule {
    return {
      module: DispatcherModule,
      imports: [
        CoreModule.forRoot(config, { app: 'dispatcher', clock: options.clock }),
        BullModule.registerQueue({ name: QueueName.Delivery }),
        QueuesModule,
      ],
      controllers: [NotificationsController, StatusWebhookController],
      providers: [
        { provide: SmsProvider, useValue: new TwilioProvider(config.twilio) },
        DeliveryService,
        SendRateLimiter,
        NotificationQueue,
        DeliveryProcessor,
        NotificationsService,
        ReconcilerService,
        StatusService,
        VoicemailService,
        DispatcherSignatureGuard,
      ],
    };
  }
}
