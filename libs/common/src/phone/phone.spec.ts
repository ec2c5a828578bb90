import { toE164 } from './phone';

describe('toE164', () => {
  it.each([
    ['(415) 555-2671', '+14155552671'],
    ['415.555.2671', '+14155552671'],
    ['+1 415 555 2671', '+14155552671'],
    ['1-415-555-2671', '+14155552671'],
    ['+44 20 7946 0958', '+442079460958'],
  ])('normalizes %s to %s', (input, expected) => {
    expect(toE164(input)).toBe(expected);
  });

  it.each(['', 'not a phone', '555-1234', '+1 000 000 0000', '1'.repeat(80)])('rejects %p', (input) => {
    expect(toE164(input)).toBeNull();
  });
});
