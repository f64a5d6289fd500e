/**
 * How a TLS endpoint of the ring is written: `tls://HOST:PORT`, an IPv6 host in brackets. The
 * backend listens on one (`xpci export --listen`, where port 0 means any free port) and the
 * frontend connects to one (`--connect`).
 */
export const TLS_SCHEME = 'tls://';

export const isTlsEndpoint = (text: string): boolean => text.startsWith(TLS_SCHEME);

/** Host and port of `tls://HOST:PORT`; throws an Error saying what is expected. */
export function parseTlsEndpoint(text: string, { anyPort = false } = {}): { host: string; port: number } {
  const match = /^tls:\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535 || (port === 0 && !anyPort)) {
    throw new Error(`expected tls://HOST:PORT (an IPv6 host in brackets${anyPort ? '; port 0: any free port' : ''}), got '${text}'`);
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}
