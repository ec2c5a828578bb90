import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiNotFoundResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { AccessRoute, uuidPipe } from '@rxnotify/common/http/params';
import { AdherenceView } from './adherence.dto';
import { AdherenceService } from './adherence.service';

@ApiTags('adherence')
@ApiBearerAuth()
@Controller('v1/patients')
export class AdherenceController {
  constructor(private readonly adherence: AdherenceService) {}

  @Get(':id/adherence')
  @Roles('staff', 'auditor')
  @ApiOkResponse({ type: AdherenceView })
  @ApiNotFoundResponse({ description: 'no such patient in reach of this key' })
  get(
    @Param('id', uuidPipe('id')) id: string,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ): Promise<AdherenceView> {
    return this.adherence.forPatient(principal, id, route);
  }
}
