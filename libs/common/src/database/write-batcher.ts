import DataLoader from 'dataloader';
import { QueryFailedError } from 'typeorm';

export interface WriteBatcherOptions<In, Out> {
  /** The most writes one statement carries. */
  maxBatchSize: number;
  /** Writes with the same key never share a statement (one `UPDATE … FROM` would apply only one of them). */
  key: (input: In) => string;
  /** One statement for many writes, none sharing a key; answers in the inputs' order. */
  many: (inputs: In[]) => Promise<Out[]>;
  /** The same write alone: for a batch of one, and for each write of a batch whose statement failed. */
  one: (input: In) => Promise<Out>;
}

/**
 * Coalesces concurrent writes into one statement and one commit. Writes that arrive while the event loop
 * handles one round of I/O (a burst of webhooks, the answers to concurrent provider calls) go out together
 * when it is done (DataLoader with no cache, scheduled by `setImmediate`), so a lone write waits for nothing.
 * Every caller's promise settles only after the statement carrying its write committed, so an acknowledgement
 * that follows it is as durable as before.
 *
 * Writes with the same key go in successive statements, in arrival order. When Postgres refuses a batch's
 * statement (one write breaks a constraint, say: the statement was rolled back), each of its writes is retried
 * alone, so one bad write fails only its own caller. Any other failure (the connection broke, and the statement
 * may have committed) fails every caller of the batch, as it would have failed each of them alone: retrying
 * could write twice.
 */
export class WriteBatcher<In, Out> {
  private readonly loader: DataLoader<In, Out>;

  constructor(private readonly options: WriteBatcherOptions<In, Out>) {
    this.loader = new DataLoader<In, Out>((inputs) => this.flush(inputs), {
      cache: false,
      maxBatchSize: options.maxBatchSize,
      batchScheduleFn: (run) => setImmediate(run),
    });
  }

  write(input: In): Promise<Out> {
    return this.loader.load(input);
  }

  private async flush(inputs: readonly In[]): Promise<(Out | Error)[]> {
    const results: (Out | Error)[] = new Array<Out | Error>(inputs.length);
    for (const round of rounds(inputs, this.options.key)) {
      const outcomes = await this.runRound(round.map((i) => inputs[i]));
      round.forEach((index, k) => (results[index] = outcomes[k]));
    }
    return results;
  }

  private async runRound(inputs: In[]): Promise<(Out | Error)[]> {
    if (inputs.length > 1) {
      try {
        return await this.options.many(inputs);
      } catch (error) {
        if (!(error instanceof QueryFailedError)) return inputs.map(() => asError(error));
        // Rolled back: find out which write it was, and fail that one only.
      }
    }
    return Promise.all(
      inputs.map((input) => this.options.one(input).catch((error: unknown) => asError(error))),
    );
  }
}

/** Input indexes split so that no round holds a key twice; a key's writes keep their order across rounds. */
function rounds<In>(inputs: readonly In[], key: (input: In) => string): number[][] {
  const seen = new Map<string, number>();
  const out: number[][] = [];
  inputs.forEach((input, index) => {
    const k = key(input);
    const round = seen.get(k) ?? 0;
    seen.set(k, round + 1);
    (out[round] ??= []).push(index);
  });
  return out;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
