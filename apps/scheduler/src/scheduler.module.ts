import { Module, type DynamicModule } from '@nestjs/common';
import type { Clock } from '@rxnotify/common/clock/clock';
import type { AppConfig } from '@rxnotify/common/config/config';
import { CoreModule } from '@rxnotify/common/core.module';
import { AdherenceModule } from './adherence/adherence.module';
import { FhirModule } from './fhir/fhir.module';
import { FillsModule } from './fills/fills.module';
import { RetentionModule } from './retention/retention.module';
import { ScansModule } from './scans/scans.module';

@Module({})
export class SchedulerModule {
  static forRoot(config: AppConfig, options: { clock?: Clock } = {}): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [
        CoreModule.forRoot(config, { app: 'scheduler', clock: options.clock }),
        FillsModule,
        FhirModule,
        ScansModule,
        AdherenceModule,
        RetentionModule,
      ],
    };
  }
}
