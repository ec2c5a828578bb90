import { QueryFailedError } from 'typeorm';
import { WriteBatcher } from './write-batcher';

/** A fake statement runner: records each statement's writes, fails a batch holding a "bad" write. */
function recordingBatcher(maxBatchSize = 64) {
  const statements: string[][] = [];
  const batcher = new WriteBatcher<{ key: string; value: string }, string>({
    maxBatchSize,
    key: (w) => w.key,
    many: async (writes) => {
      if (writes.some((w) => w.value === 'bad'))
        throw new QueryFailedError('INSERT …', [], new Error('constraint violated'));
      if (writes.some((w) => w.value === 'lost')) throw new Error('Connection terminated unexpectedly');
      statements.push(writes.map((w) => `${w.key}=${w.value}`));
      return writes.map((w) => `ok ${w.value}`);
    },
    one: async (w) => {
      if (w.value === 'bad') throw new Error(`refused ${w.key}`);
      statements.push([`${w.key}=${w.value}`]);
      return `ok ${w.value}`;
    },
  });
  return { batcher, statements };
}

describe('WriteBatcher', () => {
  it('writes what arrives together in one statement and answers each caller with its own result', async () => {
    const { batcher, statements } = recordingBatcher();
    const answers = await Promise.all(['a', 'b', 'c'].map((key) => batcher.write({ key, value: key })));
    expect(answers).toEqual(['ok a', 'ok b', 'ok c']);
    expect(statements).toEqual([['a=a', 'b=b', 'c=c']]);
  });

  it('lets a lone write go out alone, without waiting for company', async () => {
    const { batcher, statements } = recordingBatcher();
    await expect(batcher.write({ key: 'a', value: '1' })).resolves.toBe('ok 1');
    await expect(batcher.write({ key: 'b', value: '2' })).resolves.toBe('ok 2');
    expect(statements).toEqual([['a=1'], ['b=2']]);
  });

  it('never puts two writes with one key in a statement, and keeps their order', async () => {
    const { batcher, statements } = recordingBatcher();
    await Promise.all([
      batcher.write({ key: 'm1', value: 'sent' }),
      batcher.write({ key: 'm2', value: 'sent' }),
      batcher.write({ key: 'm1', value: 'delivered' }),
      batcher.write({ key: 'm1', value: 'read' }),
    ]);
    expect(statements).toEqual([['m1=sent', 'm2=sent'], ['m1=delivered'], ['m1=read']]);
  });

  it('fails only the write that broke the statement: the others are written one by one', async () => {
    const { batcher, statements } = recordingBatcher();
    const results = await Promise.allSettled([
      batcher.write({ key: 'a', value: '1' }),
      batcher.write({ key: 'b', value: 'bad' }),
      batcher.write({ key: 'c', value: '3' }),
    ]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 'ok 1' });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: new Error('refused b') });
    expect(results[2]).toEqual({ status: 'fulfilled', value: 'ok 3' });
    expect(statements).toEqual([['a=1'], ['c=3']]);
  });

  it('splits a burst larger than the batch size into several statements', async () => {
    const { batcher, statements } = recordingBatcher(2);
    await Promise.all(['a', 'b', 'c'].map((key) => batcher.write({ key, value: key })));
    expect(statements.map((s) => s.length).sort()).toEqual([1, 2]);
  });

  it('fails every write of a batch whose connection broke, and retries none (it may have committed)', async () => {
    const { batcher, statements } = recordingBatcher();
    const results = await Promise.allSettled([
      batcher.write({ key: 'a', value: '1' }),
      batcher.write({ key: 'b', value: 'lost' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(statements).toEqual([]);
  });
});
