import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { register } from 'prom-client';
import { Public } from '../auth/api-key.guard';
import { Metrics } from '../metrics/metrics.service';

/** Prometheus text exposition: the process's metrics and the app's (docs/operations.md lists them). */
@ApiExcludeController()
@SkipThrottle()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly registry: Metrics) {}

  @Get()
  @Public()
  @Header('Content-Type', register.contentType)
  metrics(): Promise<string> {
    return this.registry.exposition();
  }
}
