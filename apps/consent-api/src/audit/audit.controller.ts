import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { AccessLogService, type AccessRecord } from '@rxnotify/common/audit/access-log.service';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { InvalidInputError } from '@rxnotify/common/errors';
import { AccessQueryDto, AccessRecordView } from './audit.dto';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1/audit')
export class AuditController {
  constructor(private readonly accessLog: AccessLogService) {}

  /** Who read or changed patient data, oldest first; a key scoped to a pharmacy sees that pharmacy's rows only. */
  @Get('access')
  @Roles('auditor')
  @ApiOkResponse({ type: [AccessRecordView] })
  access(@CurrentPrincipal() principal: Principal, @Query() query: AccessQueryDto): Promise<AccessRecord[]> {
    const from = toDate(query.from, 'from');
    const to = toDate(query.to, 'to');
    if (from && to && from > to) throw new InvalidInputError(['to must not be before from']);
    return this.accessLog.query(principal.pharmacyId, { patientId: query.patientId, from, to });
  }
}

// IsISO8601 (strict) refused impossible dates; this refuses what Date or Postgres cannot hold (year 0, year 10000).
function toDate(value: string | undefined, field: string): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 1 || year > 9999) {
    throw new InvalidInputError([`${field} must be an ISO 8601 date-time between the years 1 and 9999`]);
  }
  return date;
}
