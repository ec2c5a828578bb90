import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { AdherenceModule } from '../adherence/adherence.module';
import { ScansController } from './scans.controller';
import { ScansProcessor } from './scans.processor';
import { ScansService } from './scans.service';

@Module({
  imports: [
    BullModule.registerQueue({ name: QueueName.Delivery }, { name: QueueName.Scans }),
    AdherenceModule,
  ],
  controllers: [ScansController],
  providers: [ScansService, ScansProcessor, NotificationQueue],
  exports: [ScansService],
})
export class ScansModule {}
