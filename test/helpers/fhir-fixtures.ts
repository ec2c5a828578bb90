import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, FhirResource } from 'fhir/r4';

/** The repository root; CI clones it with the shared/ folder beside it. */
const REPO_ROOT = join(__dirname, '..', '..');
export const FHIR_FIXTURES_DIR = join(REPO_ROOT, '..', 'shared', 'fixtures', 'fhir-r4');
const FIRST = 'patient-example-a.json';

export interface FhirFixture {
  file: string;
  resource: FhirResource;
}

/** Every official HL7 R4 example in the fixtures folder, read as is: patient-example-a.json (pat1) first, then by name. */
export function loadFhirFixtures(): FhirFixture[] {
  const files = readdirSync(FHIR_FIXTURES_DIR)
    .filter((file) => file.endsWith('.json'))
    .sort((a, b) => (a === FIRST ? -1 : b === FIRST ? 1 : a.localeCompare(b)));
  return files.map((file) => ({
    file,
    resource: JSON.parse(readFileSync(join(FHIR_FIXTURES_DIR, file), 'utf8')) as FhirResource,
  }));
}

export function fhirFixture(file: string): FhirResource {
  return JSON.parse(readFileSync(join(FHIR_FIXTURES_DIR, file), 'utf8')) as FhirResource;
}

export function bundleOf(resources: FhirResource[], type: Bundle['type'] = 'collection'): Bundle {
  return { resourceType: 'Bundle', type, entry: resources.map((resource) => ({ resource })) };
}
