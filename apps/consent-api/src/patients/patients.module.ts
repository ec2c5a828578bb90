import { Module } from '@nestjs/common';
import { ConsentModule } from '../consent/consent.module';
import { PatientsController } from './patients.controller';
import { PatientsService } from './patients.service';

@Module({ imports: [ConsentModule], controllers: [PatientsController], providers: [PatientsService] })
export class PatientsModule {}
