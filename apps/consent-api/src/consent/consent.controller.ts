import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { AccessRoute, CHANNELS, ParseChannelPipe, uuidPipe, type Channel } from '../shared/http';
import { ConsentChangeView, ConsentDetailView, SetConsentDto } from './consent.dto';
import { ConsentService } from './consent.service';

@ApiTags('consent')
@ApiBearerAuth()
@Controller('v1/patients/:id/consent')
export class ConsentController {
  constructor(private readonly consent: ConsentService) {}

  @Put(':channel')
  @Roles('staff', 'integration')
  @ApiParam({ name: 'channel', enum: CHANNELS })
  @ApiOkResponse({ type: ConsentChangeView })
  set(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe('id')) id: string,
    @Param('channel', ParseChannelPipe) channel: Channel,
    @Body() body: SetConsentDto,
    @AccessRoute() route: string,
  ): Promise<ConsentChangeView> {
    return this.consent.set(principal, id, channel, body, route);
  }

  @Get()
  @Roles('staff', 'integration', 'auditor')
  @ApiOkResponse({ type: ConsentDetailView })
  read(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe('id')) id: string,
    @AccessRoute() route: string,
  ): Promise<ConsentDetailView> {
    return this.consent.read(principal, id, route);
  }
}
