import { Module } from '@nestjs/common';
import { PharmaciesController } from './pharmacies.controller';
import { PharmaciesService } from './pharmacies.service';

@Module({ controllers: [PharmaciesController], providers: [PharmaciesService] })
export class PharmaciesModule {}
