import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsIn, IsOptional, IsUUID } from 'class-validator';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { AccessRoute, uuidPipe } from '@rxnotify/common/http/params';
import { NotificationsService } from './notifications.service';

const STATES = [
  'pending',
  'scheduled',
  'sending',
  'sent',
  'delivered',
  'failed',
  'suppressed',
  'cancelled',
] as const;
const KINDS = ['ready', 'refill_due', 'renewal_needed', 'unclaimed_pickup', 'adherence_gap'] as const;

export class NotificationQuery {
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() patientId?: string;
  @ApiPropertyOptional({ enum: STATES }) @IsOptional() @IsIn(STATES) state?: string;
  @ApiPropertyOptional({ enum: KINDS }) @IsOptional() @IsIn(KINDS) kind?: string;
}

export class MessageQuery {
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() patientId?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() notificationId?: string;
}

@ApiTags('notifications')
@ApiBearerAuth()
@Controller('v1')
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  @Get('notifications/:id')
  @Roles('staff', 'auditor')
  get(
    @Param('id', uuidPipe('id')) id: string,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ) {
    return this.notifications.get(principal, id, route);
  }

  @Get('notifications')
  @Roles('staff', 'auditor')
  list(
    @Query() query: NotificationQuery,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ) {
    return this.notifications.list(principal, query, route);
  }

  @Get('messages')
  @Roles('staff', 'auditor')
  messages(
    @Query() query: MessageQuery,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ) {
    return this.notifications.messages(principal, query, route);
  }

  @Get('follow-ups')
  @Roles('staff')
  followUps(@CurrentPrincipal() principal: Principal, @AccessRoute() route: string) {
    return this.notifications.followUps(principal, route);
  }
}
