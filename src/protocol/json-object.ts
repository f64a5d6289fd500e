/**
 * A JSON object from a peer (a ring payload, a control-channel line): anything else is refused
 * with an error of the caller's protocol, built by `fail` from what was wrong.
 */
export function parseJsonObject(text: string, fail: (problem: 'not-json' | 'not-object') => Error): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw fail('not-json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail('not-object');
  return value as Record<string, unknown>;
}
