import { Module } from '@nestjs/common';
import { AdherenceController } from './adherence.controller';
import { AdherenceService } from './adherence.service';

/** Needs CoreModule (global): the data source, Clock and AccessLogService. */
@Module({
  controllers: [AdherenceController],
  providers: [AdherenceService],
  exports: [AdherenceService],
})
export class AdherenceModule {}
