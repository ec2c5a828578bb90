import { Body, Controller, Get, Param, Post, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import type { Response } from 'express';
import { AccessRoute, uuidPipe } from '../shared/http';
import { PatientView, UpsertPatientDto } from './patient.dto';
import { PatientsService } from './patients.service';

@ApiTags('patients')
@ApiBearerAuth()
@Controller('v1/patients')
export class PatientsController {
  constructor(private readonly patients: PatientsService) {}

  @Post()
  @Roles('staff', 'integration')
  @ApiCreatedResponse({ type: PatientView, description: 'created' })
  @ApiOkResponse({ type: PatientView, description: 'updated' })
  async upsert(
    @CurrentPrincipal() principal: Principal,
    @Body() body: UpsertPatientDto,
    @AccessRoute() route: string,
    @Res({ passthrough: true }) res: Response,
  ): Promise<PatientView> {
    const { created, patient } = await this.patients.upsert(principal, body, route);
    res.status(created ? 201 : 200);
    return patient;
  }

  @Get(':id')
  @Roles('staff', 'auditor')
  @ApiOkResponse({ type: PatientView })
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe('id')) id: string,
    @AccessRoute() route: string,
  ): Promise<PatientView> {
    return this.patients.get(principal, id, route);
  }
}
