import { Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { ScansService, type ScanCounts } from './scans.service';

@ApiTags('scans')
@ApiBearerAuth()
@Controller('v1/scans')
export class ScansController {
  constructor(private readonly scans: ScansService) {}

  /** One scan now: the same one the timer runs (limited to the key's pharmacy for a scoped key). */
  @Post()
  @HttpCode(200)
  @Roles('admin')
  @ApiOkResponse({
    description: 'Notifications created by this scan, by kind.',
    schema: {
      example: { created: { refill_due: 3, renewal_needed: 1, unclaimed_pickup: 2, adherence_gap: 0 } },
    },
  })
  async run(@CurrentPrincipal() principal: Principal): Promise<{ created: ScanCounts }> {
    // A key scoped to one pharmacy scans that pharmacy only.
    return { created: await this.scans.scan(principal.pharmacyId) };
  }
}
