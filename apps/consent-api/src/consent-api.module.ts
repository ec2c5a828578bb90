import { Module, type DynamicModule } from '@nestjs/common';
import type { Clock } from '@rxnotify/common/clock/clock';
import type { AppConfig } from '@rxnotify/common/config/config';
import { CoreModule } from '@rxnotify/common/core.module';
import { AuditModule } from './audit/audit.module';
import { ConsentModule } from './consent/consent.module';
import { PatientsModule } from './patients/patients.module';
import { PharmaciesModule } from './pharmacies/pharmacies.module';
import { WebhooksModule } from './webhooks/webhooks.module';

export interface ConsentApiOptions {
  clock?: Clock;
}

/** Pharmacies, patients, consent and the access log over HTTP, and Twilio's inbound webhooks. */
@Module({})
export class ConsentApiModule {
  static forRoot(config: AppConfig, options: ConsentApiOptions = {}): DynamicModule {
    return {
      module: ConsentApiModule,
      imports: [
        CoreModule.forRoot(config, { app: 'consent-api', clock: options.clock }),
        PharmaciesModule,
        PatientsModule,
        ConsentModule,
        AuditModule,
        WebhooksModule,
      ],
    };
  }
}
