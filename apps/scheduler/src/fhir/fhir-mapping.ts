import type {
  CodeableConcept,
  FhirResource,
  Identifier,
  Medication,
  MedicationDispense,
  MedicationRequest,
  OperationOutcome,
  OperationOutcomeIssue,
  Patient,
} from 'fhir/r4';
import type { Language } from '@rxnotify/common/messaging';
import { toE164 } from '@rxnotify/common/phone/phone';
import type { FillStatus } from '../fills/fill.dto';

/**
 * FHIR R4 → rxnotify, as pure functions: what a Bundle's entries mean, and why an entry is refused.
 *
 * Rules a reader might not guess:
 * - Every Bundle type we accept (collection, batch, transaction) is applied entry by entry, like /v1/fills:
 *   a bad entry never rejects the others. A transaction Bundle is therefore NOT atomic here.
 * - Patient entries are applied before MedicationDispense entries, whatever their order, so a dispense can name
 *   a patient sent in the same Bundle.
 * - Patient: externalId is the identifier typed MR (medical record number), else the first identifier, else the
 *   resource id. The first name and last name come from the `official` name, else the first name that has a given
 *   name. The phone is the first valid one of the `sms` and `phone` contact points, `sms` and `mobile` first, `old`
 *   ones skipped (US unless it has a country code); none valid: the entry is rejected. Language: `es` when a
 *   (preferred, if any is marked preferred) communication language code is `es` or `es-*`, else `en`; no
 *   `communication` at all keeps what is stored (`en` for a new patient), so a system that does not track language
 *   never resets one staff set. A Patient entry never changes consent.
 * - MedicationDispense → one fill, validated by the same code as /v1/fills:
 *   - externalId: the first identifier's value, else the resource id.
 *   - the patient: `subject` → the externalId of that Patient in this Bundle (by `Patient/<id>` or fullUrl), else
 *     `<id>` itself taken as the patient's external id; a contained `#ref` Patient is found by its identifier;
 *     `subject.identifier.value` works too.
 *   - rxNumber: the id in `authorizingPrescription[0].reference` (`MedicationRequest/<id>`), else its identifier
 *     value, else the identifier of the MedicationRequest it resolves to, else the dispense's own externalId.
 *   - fillNumber: a dispense does not carry the refill sequence number, only `type` (v3 ActPharmacySupplyType).
 *     A first-fill code (FF, FFC, FFP, ...) is fill 0; a refill code (RF, RFP, RFC, ...) is fill 1 (at least one
 *     refill came before; the exact number is unknown); anything else or nothing is 0.
 *   - refillsRemaining: `dispenseRequest.numberOfRepeatsAllowed` of the authorizing MedicationRequest when it is
 *     contained in the dispense or sent in the same Bundle, minus fillNumber, clamped to 0..99; otherwise 0.
 *   - drugName: medicationCodeableConcept text or first coding display; else medicationReference display; else the
 *     referenced (contained or in-Bundle) Medication's code text or coding display; else its ingredients' names.
 *     ndc: the coding with system http://hl7.org/fhir/sid/ndc.
 *   - status: preparation → in_progress, in-progress → ready, completed → picked_up, cancelled → returned_to_stock;
 *     on-hold, stopped, declined, entered-in-error and unknown are rejected: none is a fill waiting for the patient.
 *   - filledAt: whenPrepared, else whenHandedOver. readyAt: whenPrepared (not for preparation). pickedUpAt:
 *     whenHandedOver, only for completed (an in-progress dispense has not been handed over, whatever it says).
 *     A date without a time (2015-01-15) is midnight UTC; a date-time needs its time zone, as FHIR requires.
 *   - daysSupply is required (refill dates are computed from it) and must be in days (UCUM `d`) when coded.
 * - Other resource types are rejected as not-supported. MedicationRequest and Medication entries are still read
 *   when a dispense in the Bundle refers to them, and their rejection says so: the contract's outcomes are only
 *   created, updated and rejected, and none of these is stored.
 */

export const BUNDLE_TYPES = ['collection', 'batch', 'transaction'] as const;
export const MAX_BUNDLE_ENTRIES = 10_000;
const NDC_SYSTEM = 'http://hl7.org/fhir/sid/ndc';
const UCUM_DAY = 'd';

export type IssueCode = 'invalid' | 'not-supported' | 'not-found' | 'required';

/** Why an entry is refused. `path` is FHIRPath below the entry's resource; '' is the resource itself. */
export interface EntryProblem {
  code: IssueCode;
  path: string;
  message: string;
}

export interface PatientInput {
  externalId: string;
  firstName: string;
  lastName?: string;
  phone: string;
  language?: Language;
}

/** A fill as FillsService takes it, less the pharmacy (the caller's). */
export interface FhirFill {
  externalId: string;
  patientExternalId: string;
  rxNumber: string;
  fillNumber: number;
  drugName: string;
  ndc?: string;
  quantity: number;
  daysSupply: number;
  refillsRemaining: number;
  filledAt: string;
  status: FillStatus;
  readyAt?: string;
  pickedUpAt?: string;
}
export type FillField = keyof FhirFill;
/** Where each fill field came from, as FHIRPath below the dispense. */
export type FillSources = Partial<Record<FillField, string>>;

export interface SubjectRef {
  /** The reference as sent, for messages: `Patient/pat1`, `#p1` or `identifier 654321`. */
  reference: string;
  /** The Bundle entry of that Patient, and whether it was rejected. */
  patientEntry: { index: number; rejected: boolean } | null;
}

interface Planned {
  index: number;
  resourceType: string | null;
  id: string | null;
}
export type EntryPlan =
  | (Planned & { kind: 'patient'; patient: PatientInput })
  | (Planned & { kind: 'dispense'; fill: FhirFill; sources: FillSources; subject: SubjectRef })
  | (Planned & { kind: 'rejected'; problems: EntryProblem[] });

export type BundleRead = { ok: true; entries: unknown[] } | { ok: false; problems: string[] };

// ---------------------------------------------------------------------------------------------------------------
// The Bundle itself

/** The Bundle's entries, or the problems that make the whole body unacceptable (a 422). */
export function readBundle(body: unknown): BundleRead {
  if (!isRecord(body) || body.resourceType !== 'Bundle') {
    const given = isRecord(body) ? quoted(body.resourceType) : null;
    return {
      ok: false,
      problems: [
        `resourceType must be Bundle${given ? `, not ${given}` : ''}: send a FHIR R4 Bundle of Patient and MedicationDispense entries`,
      ],
    };
  }
  if (!BUNDLE_TYPES.some((type) => type === body.type)) {
    const given = quoted(body.type);
    return {
      ok: false,
      problems: [`type must be one of ${BUNDLE_TYPES.join(', ')}${given ? `, not ${given}` : ''}`],
    };
  }
  if (body.entry === undefined) return { ok: true, entries: [] };
  if (!Array.isArray(body.entry)) return { ok: false, problems: ['entry must be an array'] };
  if (body.entry.length > MAX_BUNDLE_ENTRIES) {
    return {
      ok: false,
      problems: [`entry must hold at most ${MAX_BUNDLE_ENTRIES} resources; split the Bundle`],
    };
  }
  return { ok: true, entries: body.entry };
}

interface Indexed {
  index: number;
  resource: FhirResource;
}

/** The Bundle's resources by `Type/id` and by fullUrl, and which entries a dispense read. */
class BundleContext {
  private readonly byReference = new Map<string, Indexed>();
  readonly used = new Set<number>();
  readonly patientRejected = new Map<number, boolean>();

  constructor(entries: unknown[]) {
    entries.forEach((entry, index) => {
      const resource = resourceOf(entry);
      if (!resource) return;
      const id = str(resource.id);
      if (id && !this.byReference.has(`${resource.resourceType}/${id}`))
        this.byReference.set(`${resource.resourceType}/${id}`, { index, resource });
      const fullUrl = isRecord(entry) ? str(entry.fullUrl) : undefined;
      if (fullUrl && !this.byReference.has(fullUrl)) this.byReference.set(fullUrl, { index, resource });
    });
  }

  /** A reference from `from` to a resource of `type`: contained (`#id`), in this Bundle, or not here. */
  resolve<T extends FhirResource['resourceType']>(
    reference: string | undefined,
    from: { contained?: FhirResource[] },
    type: T,
  ): { resource: Extract<FhirResource, { resourceType: T }>; index: number | null } | null {
    if (!reference) return null;
    if (reference.startsWith('#')) {
      const contained = list(from.contained).find(
        (r) => r?.resourceType === type && r.id === reference.slice(1),
      );
      return contained
        ? { resource: contained as Extract<FhirResource, { resourceType: T }>, index: null }
        : null;
    }
    const parsed = parseReference(reference);
    const found =
      this.byReference.get(reference) ??
      (parsed ? this.byReference.get(`${parsed.type}/${parsed.id}`) : undefined);
    if (!found || found.resource.resourceType !== type) return null;
    return { resource: found.resource as Extract<FhirResource, { resourceType: T }>, index: found.index };
  }
}

/** Maps every entry; Patients first, so that dispenses know which of them were refused. */
export function planBundle(entries: unknown[]): EntryPlan[] {
  const context = new BundleContext(entries);
  const plans: EntryPlan[] = new Array(entries.length);
  const later: number[] = [];

  entries.forEach((entry, index) => {
    const resource = resourceOf(entry);
    if (!resource) {
      const bare = isRecord(entry) && isRecord(entry.resource);
      plans[index] = {
        kind: 'rejected',
        index,
        resourceType: null,
        id: null,
        problems: [
          bare
            ? { code: 'invalid', path: 'resourceType', message: 'the resource has no resourceType' }
            : {
                code: 'required',
                path: '',
                message:
                  'the entry has no resource; send each Patient and MedicationDispense in entry.resource',
              },
        ],
      };
      return;
    }
    const base = { index, resourceType: resource.resourceType, id: str(resource.id) ?? null };
    if (resource.resourceType === 'Patient') {
      const mapped = mapPatient(resource);
      plans[index] = mapped.ok
        ? { ...base, kind: 'patient', patient: mapped.patient }
        : { ...base, kind: 'rejected', problems: mapped.problems };
      context.patientRejected.set(index, !mapped.ok);
    } else {
      later.push(index);
    }
  });

  for (const index of later) {
    const resource = resourceOf(entries[index]) as FhirResource;
    if (resource.resourceType !== 'MedicationDispense') continue;
    const base = { index, resourceType: resource.resourceType, id: str(resource.id) ?? null };
    const mapped = mapDispense(resource, context);
    plans[index] = mapped.ok
      ? { ...base, kind: 'dispense', fill: mapped.fill, sources: mapped.sources, subject: mapped.subject }
      : { ...base, kind: 'rejected', problems: mapped.problems };
  }

  // Last, because whether one was read depends on the dispenses.
  for (const index of later) {
    const resource = resourceOf(entries[index]) as FhirResource;
    if (resource.resourceType === 'MedicationDispense') continue;
    plans[index] = {
      index,
      resourceType: resource.resourceType,
      id: str(resource.id) ?? null,
      kind: 'rejected',
      problems: [
        {
          code: 'not-supported',
          path: '',
          message: notIngested(resource.resourceType, context.used.has(index)),
        },
      ],
    };
  }
  return plans;
}

function notIngested(resourceType: string, used: boolean): string {
  const type = quoted(resourceType) ?? 'this type';
  const base = `resource type ${type} is not ingested; send Patient and MedicationDispense`;
  if (!used) return base;
  return resourceType === 'MedicationRequest'
    ? `${base} (this MedicationRequest was read for the refills remaining and prescription number of the dispenses that name it, and is not stored)`
    : `${base} (this ${type} was read for the dispenses that name it, and is not stored)`;
}

// ---------------------------------------------------------------------------------------------------------------
// Patient

export function mapPatient(
  patient: Patient,
): { ok: true; patient: PatientInput } | { ok: false; problems: EntryProblem[] } {
  const problems: EntryProblem[] = [];

  const key = patientKey(patient, true);
  if (!key)
    problems.push({
      code: 'required',
      path: 'identifier',
      message: 'Patient has neither an identifier nor an id to know it by',
    });
  else if (!isPlainText(key.value, 200)) {
    problems.push({
      code: 'invalid',
      path: key.path,
      message: `Patient.${key.path} must be text of 1 to 200 characters without control characters`,
    });
  }

  const names = list(patient.name);
  const order = [...names.keys()].sort(
    (a, b) => Number(names[b]?.use === 'official') - Number(names[a]?.use === 'official'),
  );
  const nameIndex = order.find((i) => label(list(names[i]?.given)[0]) !== undefined);
  const firstName = nameIndex === undefined ? undefined : label(list(names[nameIndex]?.given)[0]);
  const lastName = nameIndex === undefined ? undefined : label(names[nameIndex]?.family);
  if (nameIndex === undefined || firstName === undefined) {
    problems.push({
      code: 'required',
      path: 'name',
      message: 'Patient.name has no given name; texts address the patient by first name',
    });
  } else {
    if (!isPlainText(firstName, 100)) {
      problems.push({
        code: 'invalid',
        path: `name[${nameIndex}].given[0]`,
        message: 'Patient.name.given must be text of 1 to 100 characters without control characters',
      });
    }
    if (lastName !== undefined && !isPlainText(lastName, 100)) {
      problems.push({
        code: 'invalid',
        path: `name[${nameIndex}].family`,
        message: 'Patient.name.family must be text of 1 to 100 characters without control characters',
      });
    }
  }

  const phone = patientPhone(patient);
  if (!phone.ok) problems.push(phone.problem);

  if (problems.length > 0 || !key || !firstName || !phone.ok) return { ok: false, problems };
  const language = patientLanguage(patient);
  return {
    ok: true,
    patient: {
      externalId: key.value,
      firstName,
      ...(lastName !== undefined ? { lastName } : {}),
      phone: phone.value,
      ...(language ? { language } : {}),
    },
  };
}

/** The patient's external id: the MR identifier, else the first identifier, else (when allowed) the resource id. */
function patientKey(patient: Patient, orResourceId: boolean): { value: string; path: string } | null {
  const identifiers = list(patient.identifier);
  const isMr = (identifier: Identifier | undefined) =>
    list(identifier?.type?.coding).some((c) => c?.code === 'MR');
  const mr = identifiers.findIndex((identifier) => isMr(identifier) && str(identifier?.value));
  const first = identifiers.findIndex((identifier) => str(identifier?.value));
  const chosen = mr >= 0 ? mr : first;
  if (chosen >= 0) return { value: identifiers[chosen].value as string, path: `identifier[${chosen}].value` };
  const id = orResourceId ? str(patient.id) : undefined;
  return id ? { value: id, path: 'id' } : null;
}

function patientPhone(patient: Patient): { ok: true; value: string } | { ok: false; problem: EntryProblem } {
  const rank = (system: unknown, use: unknown) => (system === 'sms' ? 0 : use === 'mobile' ? 1 : 2);
  const candidates = list(patient.telecom)
    .filter((t) => (t?.system === 'phone' || t?.system === 'sms') && t.use !== 'old' && str(t.value))
    .sort((a, b) => rank(a.system, a.use) - rank(b.system, b.use));
  for (const telecom of candidates) {
    const e164 = toE164(telecom.value as string);
    if (e164) return { ok: true, value: e164 };
  }
  return {
    ok: false,
    problem: {
      code: candidates.length === 0 ? 'required' : 'invalid',
      path: 'telecom',
      message:
        candidates.length === 0
          ? 'Patient.telecom has no valid phone number: it holds no contact point with system phone or sms'
          : 'Patient.telecom has no valid phone number: none of its phone numbers is a valid number (US unless it has a + country code)',
    },
  };
}

function patientLanguage(patient: Patient): Language | undefined {
  const communications = list(patient.communication);
  if (communications.length === 0) return undefined;
  const preferred = communications.filter((c) => c?.preferred === true);
  const codes = (preferred.length > 0 ? preferred : communications).flatMap((c) =>
    list(c?.language?.coding).map((coding) => str(coding?.code)),
  );
  return codes.some((code) => code !== undefined && /^es(-|$)/i.test(code)) ? 'es' : 'en';
}

// ---------------------------------------------------------------------------------------------------------------
// MedicationDispense

const STATUSES = new Map<string, FillStatus>([
  ['preparation', 'in_progress'],
  ['in-progress', 'ready'],
  ['completed', 'picked_up'],
  ['cancelled', 'returned_to_stock'],
]);

type DispenseMapping =
  | { ok: true; fill: FhirFill; sources: FillSources; subject: SubjectRef }
  | { ok: false; problems: EntryProblem[] };

function mapDispense(dispense: MedicationDispense, context: BundleContext): DispenseMapping {
  const problems: EntryProblem[] = [];
  const sources: FillSources = {};

  // Identity
  const identifiers = list(dispense.identifier);
  const identifierIndex = identifiers.findIndex((identifier) => str(identifier?.value));
  const externalId = identifierIndex >= 0 ? (identifiers[identifierIndex].value as string) : str(dispense.id);
  sources.externalId = identifierIndex >= 0 ? `identifier[${identifierIndex}].value` : 'id';
  if (!externalId)
    problems.push({
      code: 'required',
      path: 'identifier',
      message: 'MedicationDispense has neither an identifier nor an id to know the fill by',
    });

  // Status
  const statusCode = str(dispense.status);
  const status = statusCode ? STATUSES.get(statusCode) : undefined;
  sources.status = 'status';
  if (!statusCode)
    problems.push({ code: 'required', path: 'status', message: 'MedicationDispense.status is required' });
  else if (!status) {
    problems.push({
      code: 'not-supported',
      path: 'status',
      message: `status ${quoted(statusCode) ?? 'given'} is not a dispense the patient can pick up; only preparation, in-progress, completed and cancelled are ingested`,
    });
  }

  // The patient
  const subject = dispenseSubject(dispense, context);
  sources.patientExternalId = 'subject';
  if (!subject.ok) problems.push(subject.problem);

  // The drug
  const drug = dispenseDrug(dispense, context);
  sources.drugName = drug.path;
  sources.ndc = drug.path;
  if (!drug.name)
    problems.push({
      code: 'required',
      path: drug.path,
      message: 'MedicationDispense.medication has no drug name (a text or a coding display)',
    });

  // Amounts
  const quantity = dispense.quantity?.value;
  sources.quantity = 'quantity.value';
  if (quantity === undefined || quantity === null) {
    problems.push({
      code: 'required',
      path: 'quantity',
      message: 'MedicationDispense.quantity is required: how much was dispensed',
    });
  } else if (typeof quantity !== 'number') {
    problems.push({
      code: 'invalid',
      path: 'quantity.value',
      message: 'MedicationDispense.quantity.value must be a number',
    });
  }
  const daysSupply = dispense.daysSupply?.value;
  const daysUnit = str(dispense.daysSupply?.code);
  sources.daysSupply = 'daysSupply.value';
  if (daysSupply === undefined || daysSupply === null) {
    problems.push({
      code: 'required',
      path: 'daysSupply',
      message: 'MedicationDispense.daysSupply is required to compute refill dates',
    });
  } else if (typeof daysSupply !== 'number') {
    problems.push({
      code: 'invalid',
      path: 'daysSupply.value',
      message: 'MedicationDispense.daysSupply.value must be a number',
    });
  } else if (daysUnit !== undefined && daysUnit !== UCUM_DAY) {
    problems.push({
      code: 'invalid',
      path: 'daysSupply.code',
      message: `MedicationDispense.daysSupply must be in days (UCUM code d), not ${quoted(daysUnit) ?? 'another unit'}`,
    });
  }

  // Dates
  const prepared = fhirDateTime(dispense.whenPrepared, 'whenPrepared');
  const handedOver = fhirDateTime(dispense.whenHandedOver, 'whenHandedOver');
  for (const date of [prepared, handedOver]) if (!date.ok) problems.push(date.problem);
  const preparedAt = prepared.ok ? prepared.value : undefined;
  const handedOverAt = handedOver.ok ? handedOver.value : undefined;
  const filledAt = preparedAt ?? handedOverAt;
  sources.filledAt = preparedAt ? 'whenPrepared' : 'whenHandedOver';
  sources.readyAt = 'whenPrepared';
  sources.pickedUpAt = 'whenHandedOver';
  if (!filledAt && prepared.ok && handedOver.ok) {
    problems.push({
      code: 'required',
      path: 'whenPrepared',
      message: 'MedicationDispense.whenPrepared or whenHandedOver is required: the date of the fill',
    });
  }

  // The prescription
  const prescription = dispensePrescription(dispense, context);
  const fillNumber = dispenseFillNumber(dispense);
  sources.fillNumber = 'type';
  sources.rxNumber = prescription.rxNumber ? 'authorizingPrescription[0]' : sources.externalId;
  sources.refillsRemaining = 'authorizingPrescription[0]';
  const repeats = prescription.request?.dispenseRequest?.numberOfRepeatsAllowed;
  const refillsRemaining =
    typeof repeats === 'number' && Number.isInteger(repeats)
      ? Math.min(99, Math.max(0, repeats - fillNumber))
      : 0;

  if (
    problems.length > 0 ||
    !externalId ||
    !status ||
    !subject.ok ||
    !drug.name ||
    typeof quantity !== 'number' ||
    typeof daysSupply !== 'number' ||
    !filledAt
  ) {
    return { ok: false, problems };
  }
  const fill: FhirFill = {
    externalId,
    patientExternalId: subject.externalId,
    rxNumber: prescription.rxNumber ?? externalId,
    fillNumber,
    drugName: drug.name,
    ...(drug.ndc ? { ndc: drug.ndc } : {}),
    quantity,
    daysSupply,
    refillsRemaining,
    filledAt,
    status,
    ...(preparedAt && status !== 'in_progress' ? { readyAt: preparedAt } : {}),
    ...(handedOverAt && status === 'picked_up' ? { pickedUpAt: handedOverAt } : {}),
  };
  return { ok: true, fill, sources, subject: subject.ref };
}

function dispenseSubject(
  dispense: MedicationDispense,
  context: BundleContext,
): { ok: true; externalId: string; ref: SubjectRef } | { ok: false; problem: EntryProblem } {
  const reference = str(dispense.subject?.reference);
  if (!reference) {
    const identifier = str(dispense.subject?.identifier?.value);
    if (identifier)
      return {
        ok: true,
        externalId: identifier,
        ref: { reference: `identifier ${identifier}`, patientEntry: null },
      };
    return {
      ok: false,
      problem: {
        code: 'required',
        path: 'subject',
        message: 'MedicationDispense.subject is required: the patient the fill is for',
      },
    };
  }
  const shown = quoted(reference, 200) ?? 'given';
  const found = context.resolve(reference, dispense, 'Patient');
  if (found) {
    // A contained Patient's id means nothing outside this resource: only its identifier can name the patient.
    const key = patientKey(found.resource, found.index !== null);
    if (!key) {
      return {
        ok: false,
        problem: {
          code: 'invalid',
          path: 'subject',
          message: `MedicationDispense.subject ${shown} is a contained Patient without an identifier to find the patient by`,
        },
      };
    }
    const patientEntry =
      found.index === null
        ? null
        : { index: found.index, rejected: context.patientRejected.get(found.index) ?? false };
    return { ok: true, externalId: key.value, ref: { reference, patientEntry } };
  }
  if (reference.startsWith('#')) {
    return {
      ok: false,
      problem: {
        code: 'not-found',
        path: 'subject.reference',
        message: `MedicationDispense.subject ${shown} names no contained Patient`,
      },
    };
  }
  const parsed = parseReference(reference);
  if (!parsed) {
    return {
      ok: false,
      problem: {
        code: 'not-found',
        path: 'subject.reference',
        message: `MedicationDispense.subject ${shown} names no Patient in this Bundle`,
      },
    };
  }
  if (parsed.type !== 'Patient') {
    return {
      ok: false,
      problem: {
        code: 'invalid',
        path: 'subject.reference',
        message: `MedicationDispense.subject must be a Patient, not a ${quoted(parsed.type) ?? 'another resource'}`,
      },
    };
  }
  return { ok: true, externalId: parsed.id, ref: { reference, patientEntry: null } };
}

function dispenseDrug(
  dispense: MedicationDispense,
  context: BundleContext,
): { name?: string; ndc?: string; path: string } {
  const concept = dispense.medicationCodeableConcept;
  if (concept) return { name: conceptName(concept), ndc: ndcOf(concept), path: 'medicationCodeableConcept' };
  const reference = dispense.medicationReference;
  const found = context.resolve(str(reference?.reference), dispense, 'Medication');
  if (found?.index != null) context.used.add(found.index);
  const medication: Medication | undefined = found?.resource;
  return {
    name: label(reference?.display) ?? conceptName(medication?.code) ?? ingredientsName(medication),
    ndc: ndcOf(medication?.code),
    path: 'medicationReference',
  };
}

function dispensePrescription(
  dispense: MedicationDispense,
  context: BundleContext,
): { rxNumber?: string; request?: MedicationRequest } {
  const authorizing = list(dispense.authorizingPrescription)[0];
  const reference = str(authorizing?.reference);
  const found = context.resolve(reference, dispense, 'MedicationRequest');
  if (found?.index != null) context.used.add(found.index);
  const parsed = reference ? parseReference(reference) : null;
  const rxNumber =
    (parsed?.type === 'MedicationRequest' ? parsed.id : undefined) ??
    str(authorizing?.identifier?.value) ??
    str(list(found?.resource.identifier).find((identifier) => str(identifier?.value))?.value) ??
    (found?.index != null ? str(found.resource.id) : undefined);
  return { rxNumber, request: found?.resource };
}

function dispenseFillNumber(dispense: MedicationDispense): number {
  const codes = list(dispense.type?.coding).flatMap((coding) => str(coding?.code)?.toUpperCase() ?? []);
  if (codes.some((code) => code.startsWith('FF'))) return 0;
  return codes.some((code) => code.startsWith('RF')) ? 1 : 0;
}

function conceptName(concept: CodeableConcept | undefined): string | undefined {
  return (
    label(concept?.text) ??
    list(concept?.coding)
      .map((coding) => label(coding?.display))
      .find((display) => display !== undefined)
  );
}

function ndcOf(concept: CodeableConcept | undefined): string | undefined {
  return str(list(concept?.coding).find((coding) => coding?.system === NDC_SYSTEM && str(coding.code))?.code);
}

/** A compounded medication has no code of its own: "Salicylic Acid + Hydrocortisone ointment". */
function ingredientsName(medication: Medication | undefined): string | undefined {
  const names = list(medication?.ingredient)
    .map(
      (ingredient) =>
        conceptName(ingredient?.itemCodeableConcept) ?? label(ingredient?.itemReference?.display),
    )
    .filter((name): name is string => name !== undefined)
    .map((name) => name.replace(/\s*\((substance|product)\)$/i, ''));
  if (names.length === 0) return undefined;
  const form = conceptName(medication?.form);
  return form ? `${names.join(' + ')} ${form.toLowerCase()}` : names.join(' + ');
}

// ---------------------------------------------------------------------------------------------------------------
// From FillsService's words to FHIR's

const FILL_FIELDS: readonly FillField[] = [
  'externalId',
  'patientExternalId',
  'rxNumber',
  'fillNumber',
  'drugName',
  'ndc',
  'quantity',
  'daysSupply',
  'refillsRemaining',
  'filledAt',
  'status',
  'readyAt',
  'pickedUpAt',
];
const FIELD_NAMES: Partial<Record<FillField, string>> = {
  rxNumber: 'the prescription number (from authorizingPrescription)',
  fillNumber: 'the fill number (from type)',
  drugName: 'the drug name',
  ndc: 'the NDC code',
  refillsRemaining: 'the refills remaining (from the MedicationRequest)',
};

/**
 * FillsService speaks of fill fields ("filledAt must not be in the future"); the sender knows its dispense. Each
 * field named in a message becomes the element it came from ("MedicationDispense.whenPrepared must not be in the
 * future"), and the first one is the issue's expression.
 */
export function fillErrorsToProblems(
  errors: string[],
  sources: FillSources,
  subject: SubjectRef,
  patientExternalId: string,
): EntryProblem[] {
  const problems = errors.map((error) => fillErrorToProblem(error, sources, subject, patientExternalId));
  // filledAt and readyAt both come from whenPrepared: one sentence is enough.
  return problems.filter(
    (problem, k) => problems.findIndex((other) => other.message === problem.message) === k,
  );
}

export function fillErrorToProblem(
  error: string,
  sources: FillSources,
  subject: SubjectRef,
  patientExternalId: string,
): EntryProblem {
  if (error.startsWith('patientExternalId')) {
    const shown = quoted(subject.reference, 200) ?? 'given';
    const why = subject.patientEntry?.rejected
      ? `its Patient entry (entry ${subject.patientEntry.index}) was rejected`
      : `send the Patient in the same Bundle or through POST /v1/patients first`;
    return {
      code: 'not-found',
      path: 'subject',
      message: `MedicationDispense.subject ${shown} (patient ${quoted(patientExternalId, 200) ?? ''}) is not a patient of this pharmacy; ${why}`,
    };
  }
  const first = FILL_FIELDS.find((field) => new RegExp(`^${field}\\b`).test(error));
  const message = FILL_FIELDS.reduce(
    (text, field) =>
      sources[field]
        ? text.replace(
            new RegExp(`\\b${field}\\b`, 'g'),
            FIELD_NAMES[field] ?? `MedicationDispense.${sources[field]}`,
          )
        : text,
    error,
  );
  return {
    code: /not found/.test(error) ? 'not-found' : 'invalid',
    path: (first && sources[first]) ?? '',
    message: message === error && !first ? `MedicationDispense: ${error}` : message,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The answer

export function entryExpression(index: number, path: string): string {
  return `Bundle.entry[${index}].resource${path ? `.${path}` : ''}`;
}

/** One error issue per rejected entry; FHIR needs at least one issue, so an all-accepted Bundle gets an information one. */
export function operationOutcome(
  rejected: { index: number; problems: EntryProblem[] }[],
  entryCount: number,
): OperationOutcome {
  const issue: OperationOutcomeIssue[] = rejected.map(({ index, problems }) => ({
    severity: 'error',
    code: problems[0]?.code ?? 'invalid',
    diagnostics: problems.map((p) => p.message).join('; '),
    expression: [...new Set(problems.map((p) => entryExpression(index, p.path)))],
  }));
  if (issue.length === 0) {
    issue.push({
      severity: 'information',
      code: 'informational',
      diagnostics: `all ${entryCount} entries were accepted`,
    });
  }
  return { resourceType: 'OperationOutcome', issue };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading untrusted JSON as FHIR

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
const PARTIAL_DATE = /^\d{4}(-\d{2})?$/;

/** A FHIR dateTime as ISO 8601 UTC. Absent is fine (ok, no value); a date alone is midnight UTC. */
export function fhirDateTime(
  value: unknown,
  element: string,
): { ok: true; value?: string } | { ok: false; problem: EntryProblem } {
  if (value === undefined || value === null) return { ok: true };
  const invalid = (message: string) => ({
    ok: false as const,
    problem: { code: 'invalid' as const, path: element, message },
  });
  if (typeof value !== 'string')
    return invalid(`MedicationDispense.${element} must be a FHIR dateTime string`);
  if (PARTIAL_DATE.test(value))
    return invalid(
      `MedicationDispense.${element} names only a year or month; a day (YYYY-MM-DD) or a date-time is needed`,
    );
  const date = DATE.exec(value);
  if (date) {
    const at = new Date(Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3])));
    if (at.toISOString().slice(0, 10) !== value)
      return invalid(`MedicationDispense.${element} is not a calendar date`);
    return { ok: true, value: at.toISOString() };
  }
  const ms = DATE_TIME.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) {
    return invalid(
      `MedicationDispense.${element} must be a FHIR dateTime: YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss with a time zone (Z or ±hh:mm)`,
    );
  }
  return { ok: true, value: new Date(ms).toISOString() };
}

/** `Patient/pat1`, `https://host/fhir/Patient/pat1/_history/2` → type and id; anything else → null. */
export function parseReference(reference: string): { type: string; id: string } | null {
  const match = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(reference);
  return match ? { type: match[1], id: match[2] } : null;
}

function resourceOf(entry: unknown): FhirResource | null {
  if (!isRecord(entry) || !isRecord(entry.resource) || !str(entry.resource.resourceType)) return null;
  return entry.resource as unknown as FhirResource;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list<T>(value: T[] | null | undefined): T[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** Text meant for people (names, displays), trimmed. */
function label(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim().length > 0 ? value.trim() : undefined;
}

/** A value the sender gave, fit to repeat in a message: short and printable, else null. */
function quoted(value: unknown, max = 64): string | null {
  return typeof value === 'string' && value.length > 0 && value.length <= max && /^[\x21-\x7e]+$/.test(value)
    ? value
    : null;
}

function isPlainText(value: string, max: number): boolean {
  return value.length <= max && /\S/.test(value) && /^[^\p{Cc}]*$/u.test(value);
}
