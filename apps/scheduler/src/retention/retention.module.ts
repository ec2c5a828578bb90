import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { RetentionProcessor } from './retention.processor';

@Module({
  imports: [BullModule.registerQueue({ name: QueueName.Retention })],
  providers: [RetentionProcessor],
})
export class RetentionModule {}
