import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { NotificationQueue } from '@rxnotify/common/queue/notification-queue';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { FillsImportService } from './fills-import.service';
import { FillsController } from './fills.controller';
import { FillsService } from './fills.service';

@Module({
  imports: [BullModule.registerQueue({ name: QueueName.Delivery })],
  controllers: [FillsController],
  providers: [FillsService, FillsImportService, NotificationQueue],
  exports: [FillsService],
})
export class FillsModule {}
