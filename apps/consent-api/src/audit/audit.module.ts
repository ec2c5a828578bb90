import { Module } from '@nestjs/common';
import { AuditController } from './audit.controller';

/** The access log itself is kept by AccessLogService (CoreModule); this module only serves it to auditors. */
@Module({ controllers: [AuditController] })
export class AuditModule {}
