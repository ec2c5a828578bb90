import { canReach, type Principal } from '@rxnotify/common/auth/api-keys';
import { arrayLiteral, type ArrayElement } from '@rxnotify/common/database/array-literal';
import type { FillDto, FillOutcome } from './fill.dto';
import { checkFill } from './fill-validation';

/**
 * A fill that passed validation, at its place in the batch: what the write needs of it besides the columns. Only
 * these fields are kept, so that a batch waiting its turn holds each fill's fields once (in the columns).
 */
export interface ValidFill {
  index: number;
  /** The fill's identity within the batch: pharmacy and external id. */
  key: string;
  pharmacyId: string;
  externalId: string;
  patientExternalId: string;
}

/** The write's column arrays, each already in Postgres's text form (see arrayLiteral), in the INSERT's order. */
export interface FillColumns {
  pharmacyId: string;
  externalId: string;
  rxNumber: string;
  fillNumber: string;
  drugName: string;
  ndc: string;
  quantity: string;
  daysSupply: string;
  refillsRemaining: string;
  filledAt: string;
  status: string;
  readyAt: string;
  pickedUpAt: string;
  maintenance: string;
  therapeuticClass: string;
}

/** A batch ready to be written: see FillBatch.seal. */
export interface SealedFillBatch {
  /** One per input, in input order; the rejected ones are set, the rest are set by the write. */
  results: FillOutcome[];
  /** The fills to write, in input order, each key once. */
  rows: ValidFill[];
  columns: FillColumns;
}

export function fillKey(pharmacyId: string, externalId: string): string {
  return `${pharmacyId}\u0000${externalId}`;
}

/**
 * Everything about a batch of fills that needs no transaction: each fill validated alone, the pharmacy checked
 * against the caller, a fill sent twice resolved (the last one wins, as if sent one after the other), and the
 * columns laid out for the INSERT. The CSV import builds the next chunk's batch while the previous one is being
 * written, so none of this stands between two of Postgres's statements.
 */
export class FillBatch {
  private readonly results: FillOutcome[] = [];
  private readonly valid: { row: ValidFill; fill: FillDto }[] = [];

  /** `now` bounds the dates a fill may carry ("must not be in the future"), read as each fill is added. */
  constructor(
    private readonly principal: Principal,
    private readonly now: () => Date,
  ) {}

  get size(): number {
    return this.results.length;
  }

  /** Validates one input fill and takes its place in the batch. */
  add(input: unknown): void {
    const index = this.results.length;
    const check = checkFill(input, this.now());
    if (!check.ok) {
      this.results.push({ externalId: check.externalId, outcome: 'rejected', errors: check.errors });
    } else if (!canReach(this.principal, check.fill.pharmacyId)) {
      this.results.push({
        externalId: check.fill.externalId,
        outcome: 'rejected',
        errors: ['pharmacyId not found'],
      });
    } else {
      // A hole, filled in by the write.
      this.results.push(undefined as unknown as FillOutcome);
      const { pharmacyId, externalId, patientExternalId } = check.fill;
      this.valid.push({
        row: { index, key: fillKey(pharmacyId, externalId), pharmacyId, externalId, patientExternalId },
        fill: check.fill,
      });
    }
  }

  /** Takes a place for an input rejected before it could be read as a fill (a CSV record of the wrong width). */
  addRejected(outcome: FillOutcome): void {
    this.results.push(outcome);
  }

  seal(): SealedFillBatch {
    const lastIndexByKey = new Map<string, number>();
    for (const { row } of this.valid) lastIndexByKey.set(row.key, row.index);
    const kept =
      lastIndexByKey.size === this.valid.length
        ? this.valid
        : this.valid.filter(({ row: { index, key, externalId } }) => {
            if (lastIndexByKey.get(key) === index) return true;
            this.results[index] = {
              externalId,
              outcome: 'rejected',
              errors: ['externalId appears again later in this batch; the later one was applied'],
            };
            return false;
          });
    const column = (pick: (fill: FillDto) => ArrayElement): string =>
      arrayLiteral(kept.map(({ fill }) => pick(fill)));
    const columns: FillColumns = {
      pharmacyId: column((f) => f.pharmacyId),
      externalId: column((f) => f.externalId),
      rxNumber: column((f) => f.rxNumber),
      fillNumber: column((f) => f.fillNumber),
      drugName: column((f) => f.drugName),
      ndc: column((f) => f.ndc ?? null),
      quantity: column((f) => f.quantity),
      daysSupply: column((f) => f.daysSupply),
      refillsRemaining: column((f) => f.refillsRemaining),
      filledAt: column((f) => f.filledAt),
      status: column((f) => f.status),
      readyAt: column((f) => f.readyAt ?? null),
      pickedUpAt: column((f) => f.pickedUpAt ?? null),
      maintenance: column((f) => f.maintenance ?? false),
      therapeuticClass: column((f) => f.therapeuticClass ?? null),
    };
    return { results: this.results, rows: kept.map(({ row }) => row), columns };
  }
}
