/**
 * Text received from the other side (error messages, Shutdown reasons, the backend's name) is
 * untrusted: before anyone prints it, it is cut at the limit the protocol sets for it and every
 * control character is escaped, so a hostile peer can neither flood a terminal or a log nor move
 * the cursor, retitle the window or fake log lines (newline, ANSI escapes, bidi overrides).
 */

/** C0, DEL, C1, and the bidi embedding/override/isolate characters that reorder what is shown. */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escape(char: string): string {
  const code = char.charCodeAt(0);
  return NAMED[char] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/** At most `limitBytes` UTF-8 bytes of `text` (never half a character), control characters escaped. */
export function printablePeerText(text: string, limitBytes: number): string {
  let cut = text;
  if (Buffer.byteLength(text, 'utf8') > limitBytes) {
    const bytes = Buffer.from(text, 'utf8');
    let end = limitBytes;
    while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
    cut = bytes.subarray(0, end).toString('utf8');
  }
  return cut.replace(UNPRINTABLE, escape);
}
