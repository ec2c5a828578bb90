/**
 * What XML 1.0 cannot carry: control characters other than tab and line breaks, half of a surrogate pair, U+FFFE
 * and U+FFFF. twilio's TwiML builder throws on any of them, so a pharmacy or drug name holding one would fail
 * the answer to a STOP, or a call, after the work before it was done.
 */
const NOT_XML = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text for a TwiML verb (`<Message>`, `<Say>`), without the characters XML cannot carry. */
export function twimlText(text: string): string {
  return text.replace(NOT_XML, '');
}
