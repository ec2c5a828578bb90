import { Body, Controller, ForbiddenException, Get, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { uuidPipe } from '../shared/http';
import { CreatePharmacyDto, PharmacyView, UpdatePharmacyDto } from './pharmacy.dto';
import { PharmaciesService } from './pharmacies.service';

@ApiTags('pharmacies')
@ApiBearerAuth()
@Controller('v1/pharmacies')
export class PharmaciesController {
  constructor(private readonly pharmacies: PharmaciesService) {}

  @Post()
  @Roles('admin')
  @ApiCreatedResponse({ type: PharmacyView })
  create(@CurrentPrincipal() principal: Principal, @Body() body: CreatePharmacyDto): Promise<PharmacyView> {
    // A key scoped to one pharmacy could not reach the pharmacy it created.
    if (principal.pharmacyId !== null)
      throw new ForbiddenException('creating a pharmacy needs a key not scoped to a pharmacy');
    return this.pharmacies.create(body);
  }

  @Patch(':id')
  @Roles('admin')
  @ApiOkResponse({ type: PharmacyView })
  update(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe('id')) id: string,
    @Body() body: UpdatePharmacyDto,
  ): Promise<PharmacyView> {
    return this.pharmacies.update(principal, id, body);
  }

  @Get(':id')
  @Roles('staff', 'integration', 'auditor')
  @ApiOkResponse({ type: PharmacyView })
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe('id')) id: string,
  ): Promise<PharmacyView> {
    return this.pharmacies.get(principal, id);
  }
}
