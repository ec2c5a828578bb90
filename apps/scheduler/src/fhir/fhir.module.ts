import { Module } from '@nestjs/common';
import { FillsModule } from '../fills/fills.module';
import { FhirController } from './fhir.controller';
import { FhirService } from './fhir.service';

@Module({
  imports: [FillsModule],
  controllers: [FhirController],
  providers: [FhirService],
})
export class FhirModule {}
