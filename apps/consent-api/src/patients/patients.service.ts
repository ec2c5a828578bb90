import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { AccessLogService } from '@rxnotify/common/audit/access-log.service';
import { canReach, type Principal } from '@rxnotify/common/auth/api-keys';
import { NotFoundError } from '@rxnotify/common/errors';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { readPatient, upsertPatient } from '@rxnotify/common/patients/patient-store';
import { DataSource } from 'typeorm';
import { ConsentService } from '../consent/consent.service';
import { requireE164 } from '../shared/http';
import { findPharmacyInScope } from '../shared/patient-scope';
import { canonicalTimeZone } from '../shared/validators';
import type { PatientView, UpsertPatientDto } from './patient.dto';

/** Patients. Names and phone exist only as key-ring ciphertext in the database; the phone is found by its blind index. */
@Injectable()
export class PatientsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keyRing: KeyRing,
    private readonly accessLog: AccessLogService,
    private readonly consent: ConsentService,
  ) {}

  async upsert(
    principal: Principal,
    input: UpsertPatientDto,
    route: string,
  ): Promise<{ created: boolean; patient: PatientView }> {
    const phone = requireE164(input.phone, 'phone');
    const timezone = input.timezone ? canonicalTimeZone(input.timezone) : null;
    return this.db.transaction(async (manager) => {
      const pharmacyId = await findPharmacyInScope(manager, principal, input.pharmacyId);
      const { created, patient } = await upsertPatient(manager, this.keyRing, {
        pharmacyId,
        externalId: input.externalId,
        firstName: input.firstName,
        lastName: input.lastName,
        phone,
        language: input.language,
        timezone: input.timezone === undefined ? undefined : timezone,
        detailedMessages: input.detailedMessages,
      });
      await this.accessLog.record(
        principal,
        [{ patientId: patient.id, pharmacyId, action: 'patient.upsert', route }],
        manager,
      );
      return { created, patient: { ...patient, consent: await this.consent.summary(manager, patient.id) } };
    });
  }

  async get(principal: Principal, id: string, route: string): Promise<PatientView> {
    return this.db.transaction(async (manager) => {
      const patient = await readPatient(manager, this.keyRing, id);
      if (!patient || !canReach(principal, patient.pharmacyId)) throw new NotFoundError('patient');
      await this.accessLog.record(
        principal,
        [{ patientId: patient.id, pharmacyId: patient.pharmacyId, action: 'patient.read', route }],
        manager,
      );
      return { ...patient, consent: await this.consent.summary(manager, patient.id) };
    });
  }
}
