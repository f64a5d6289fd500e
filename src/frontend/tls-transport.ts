/**
 * A frontend on another host: the ring over TLS to `xpci export --listen tls://HOST:PORT`, with
 * mutual authentication (this client presents --cert/--key; the backend's certificate must chain
 * to --ca and name HOST). Plain node:tls, so the frontend stays free of native code.
 */
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ConnectError, type Transport } from './transport.js';
import { SocketTransport } from './unix-socket-transport.js';
import { parseTlsEndpoint } from '../protocol/ring/tls-endpoint.js';

export { isTlsEndpoint } from '../protocol/ring/tls-endpoint.js';

/** PEM contents (or buffers) of this client's certificate and key, and of the CA that signed the backend's. */
export interface TlsCredentials {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

const CLIENT_REFUSED = "the backend refused this client's certificate";
const CLIENT_FIX = "check --cert/--key, that the backend's --client-ca signed it, and its --allow-subject";

/** TLS failures in words: which side refused whom, and what to check. */
export function describeTlsFailure(url: string, error: Error & { code?: string }): Error {
  const code = error.code ?? '';
  const alert = /ALERT_(\w+)$/.exec(code)?.[1]?.toLowerCase().replace(/_/g, ' ');
  let why: string;
  if (alert) why = `${CLIENT_REFUSED} (TLS alert: ${alert}): ${CLIENT_FIX}`;
  else if (/CERT|SIGNATURE|ALTNAME|ISSUER/.test(code)) why = `the backend's certificate is not trusted (${code}): check --ca and that the certificate names the host`;
  else why = error.message;
  return Object.assign(new Error(`TLS session with ${url} failed: ${why}`), { code });
}

/**
 * Connect and finish the handshake. Under TLS 1.3 the backend judges the client certificate after
 * the client thinks the handshake is done, so the transport is handed out only once the backend has
 * accepted it (its first session ticket arrives); a refusal (an alert, or the stream closed right
 * away) surfaces here as a ConnectError naming the likely cause.
 */
export function openTlsTransport(url: string, credentials: TlsCredentials | undefined): Promise<Transport> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseTlsEndpoint(url));
  } catch (error) {
    return Promise.reject(new ConnectError(url, `cannot connect to ${url}: ${(error as Error).message}`, 'EINVAL'));
  }
  if (!credentials) {
    return Promise.reject(new ConnectError(url, `cannot connect to ${url}: a TLS backend needs this client's --cert and --key, and the --ca that signed the backend's certificate`, 'EINVAL'));
  }
  const options: ConnectionOptions = { host, port, ...credentials, minVersion: 'TLSv1.2', servername: /^[\d.:]+$/.test(host) ? undefined : host };
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect(options);
    let settled = false;
    const fail = (error: Error & { code?: string }): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new ConnectError(url, describeTlsFailure(url, error).message, error.code));
    };
    // Under TLS 1.3 a refused client certificate often shows as the stream closing, without an alert.
    const closedEarly = (): void => fail(new Error(`${CLIENT_REFUSED} (it closed the connection after the handshake): ${CLIENT_FIX}`));
    const ready = (): void => {
      if (settled) return;
      settled = true;
      socket.off('error', fail);
      socket.off('close', closedEarly);
      resolve(new SocketTransport('tls', url, socket, (error) => describeTlsFailure(url, error)));
    };
    socket.once('error', fail);
    socket.once('close', closedEarly);
    socket.once('secureConnect', () => {
      // A write from inside the 'session' event is lost (it runs within OpenSSL's read): hand the
      // transport out on the next turn.
      if (socket.getProtocol() === 'TLSv1.3') socket.once('session', () => setImmediate(ready));
      else ready();
    });
  });
}
