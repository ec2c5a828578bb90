import { canReach, type Principal } from '@rxnotify/common/auth/api-keys';
import { NotFoundError } from '@rxnotify/common/errors';
import type { EntityManager } from 'typeorm';

export interface PatientRef {
  id: string;
  pharmacyId: string;
}

/** The patient if the caller may reach it; another pharmacy's patient is "not found", like a missing one. */
export async function findPatientInScope(
  manager: EntityManager,
  principal: Principal,
  id: string,
): Promise<PatientRef> {
  const [row] = await manager.query<{ pharmacy_id: string }[]>(
    `SELECT pharmacy_id FROM patients WHERE id = $1`,
    [id],
  );
  if (!row || !canReach(principal, row.pharmacy_id)) throw new NotFoundError('patient');
  return { id, pharmacyId: row.pharmacy_id };
}

/** The pharmacy if the caller may reach it, else "not found". */
export async function findPharmacyInScope(
  manager: EntityManager,
  principal: Principal,
  id: string,
): Promise<string> {
  const [row] = await manager.query<{ id: string }[]>(`SELECT id FROM pharmacies WHERE id = $1`, [id]);
  if (!row || !canReach(principal, row.id)) throw new NotFoundError('pharmacy');
  return row.id;
}
