import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AccessLogService } from '@rxnotify/common/audit/access-log.service';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { InvalidInputError, NotFoundError } from '@rxnotify/common/errors';
import { upsertPatient } from '@rxnotify/common/patients/patient-store';
import { FillsService } from '../fills/fills.service';
import {
  fillErrorsToProblems,
  operationOutcome,
  planBundle,
  readBundle,
  type EntryPlan,
  type EntryProblem,
} from './fhir-mapping';
import type { FhirEntryResult, FhirIngestResult } from './fhir.dto';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type PatientPlan = Extract<EntryPlan, { kind: 'patient' }>;
type DispensePlan = Extract<EntryPlan, { kind: 'dispense' }>;

/** FHIR R4 ingest: a Bundle's Patients become patients, its MedicationDispenses fills (through FillsService). */
@Injectable()
export class FhirService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly keyRing: KeyRing,
    private readonly accessLog: AccessLogService,
    private readonly fills: FillsService,
  ) {}

  async ingest(
    principal: Principal,
    pharmacyParam: unknown,
    body: unknown,
    route: string,
  ): Promise<FhirIngestResult> {
    const pharmacyId = await this.pharmacyOf(principal, pharmacyParam);
    const bundle = readBundle(body);
    if (!bundle.ok) throw new InvalidInputError(bundle.problems);

    const plans = planBundle(bundle.entries);
    const results: FhirEntryResult[] = new Array(plans.length);
    const rejected: { index: number; problems: EntryProblem[] }[] = [];
    const reject = (plan: EntryPlan, problems: EntryProblem[]) => {
      results[plan.index] = {
        entry: plan.index,
        resourceType: plan.resourceType,
        id: plan.id,
        outcome: 'rejected',
        errors: problems.map((p) => p.message),
      };
      rejected.push({ index: plan.index, problems });
    };

    for (const plan of plans) if (plan.kind === 'rejected') reject(plan, plan.problems);
    await this.upsertPatients(
      principal,
      pharmacyId,
      plans.filter((p): p is PatientPlan => p.kind === 'patient'),
      results,
      route,
    );
    await this.upsertFills(
      principal,
      pharmacyId,
      plans.filter((p): p is DispensePlan => p.kind === 'dispense'),
      results,
      reject,
      route,
    );

    rejected.sort((a, b) => a.index - b.index);
    return { results, operationOutcome: operationOutcome(rejected, plans.length) };
  }

  /** The key's own pharmacy, or for a key that reaches every pharmacy, the one named by ?pharmacyId=. */
  private async pharmacyOf(principal: Principal, param: unknown): Promise<string> {
    const named = param === undefined || param === '' ? undefined : param;
    if (principal.pharmacyId !== null) {
      if (named !== undefined && named !== principal.pharmacyId) throw new NotFoundError('pharmacy');
      return principal.pharmacyId;
    }
    if (named === undefined) {
      throw new InvalidInputError([
        'pharmacyId is required (?pharmacyId=<uuid>): this API key is not bound to one pharmacy',
      ]);
    }
    if (typeof named !== 'string' || !UUID.test(named))
      throw new InvalidInputError(['pharmacyId must be a UUID']);
    const [row] = await this.db.query<{ id: string }[]>(`SELECT id FROM pharmacies WHERE id = $1`, [named]);
    if (!row) throw new NotFoundError('pharmacy');
    return row.id;
  }

  /** One transaction; rows are locked in externalId order so that two Bundles naming the same patients cannot deadlock. */
  private async upsertPatients(
    principal: Principal,
    pharmacyId: string,
    plans: PatientPlan[],
    results: FhirEntryResult[],
    route: string,
  ) {
    if (plans.length === 0) return;
    const ordered = [...plans].sort((a, b) =>
      a.patient.externalId < b.patient.externalId
        ? -1
        : a.patient.externalId > b.patient.externalId
          ? 1
          : a.index - b.index,
    );
    await this.db.transaction(async (tx) => {
      const touched: string[] = [];
      for (const plan of ordered) {
        const { created, patient } = await upsertPatient(tx, this.keyRing, { pharmacyId, ...plan.patient });
        results[plan.index] = {
          entry: plan.index,
          resourceType: plan.resourceType,
          id: plan.id,
          outcome: created ? 'created' : 'updated',
          patientId: patient.id,
        };
        touched.push(patient.id);
      }
      await this.accessLog.record(
        principal,
        [...new Set(touched)].map((patientId) => ({
          patientId,
          pharmacyId,
          action: 'patient.upsert',
          route,
        })),
        tx,
      );
    });
  }

  private async upsertFills(
    principal: Principal,
    pharmacyId: string,
    plans: DispensePlan[],
    results: FhirEntryResult[],
    reject: (plan: EntryPlan, problems: EntryProblem[]) => void,
    route: string,
  ) {
    if (plans.length === 0) return;
    const outcomes = await this.fills.upsert(
      principal,
      plans.map((plan) => ({ pharmacyId, ...plan.fill })),
      route,
    );
    outcomes.forEach((outcome, k) => {
      const plan = plans[k];
      if (outcome.outcome === 'rejected') {
        reject(
          plan,
          fillErrorsToProblems(outcome.errors, plan.sources, plan.subject, plan.fill.patientExternalId),
        );
      } else {
        results[plan.index] = {
          entry: plan.index,
          resourceType: plan.resourceType,
          id: plan.id,
          outcome: outcome.outcome,
          fillId: outcome.id,
        };
      }
    });
  }
}
