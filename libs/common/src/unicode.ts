/**
 * Half of a surrogate pair without its other half (with the `u` flag, a whole pair is one code point, not `Cs`).
 * Postgres stores one in text as U+FFFD, so the text read back is not the text sent, and refuses one in jsonb.
 */
const LONE_SURROGATE = /\p{Cs}/u;

export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/** How a field holding one is refused, after the field's name. */
export const LONE_SURROGATE_PROBLEM = 'must be well-formed Unicode text (it holds half of a surrogate pair)';
