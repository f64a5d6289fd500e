/**
 * A throwaway PKI for TLS tests and the TLS bench, made with the system's openssl (Debian's
 * openssl package; scripts/setup-host.sh installs it): a CA, a backend certificate for 127.0.0.1,
 * an allowed client (CN=ci-runner), a client of the same CA with another subject (CN=mallory), and a
 * client of another CA with the allowed subject. EC P-256 keys, valid one day.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestPki {
  /** CA certificate that signed the backend and the allowed clients */
  ca: string;
  backend: KeyPair;
  client: KeyPair;
  otherSubject: KeyPair;
  otherCa: KeyPair;
}

export const ALLOWED_SUBJECT = 'CN=ci-runner';

const openssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function selfSigned(dir: string, name: string): KeyPair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  openssl(['req', '-x509', ...newKey, '-keyout', pair.key, '-out', pair.cert, '-subj', `/CN=${name}`, '-days', '1']);
  return pair;
}

function signed(dir: string, name: string, subject: string, ca: KeyPair, extensions = ''): KeyPair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(['req', ...newKey, '-keyout', pair.key, '-out', csr, '-subj', subject]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', pair.cert, '-days', '1', '-extfile', ext]);
  return pair;
}

export function createTestPki(dir: string): TestPki {
  const ca = selfSigned(dir, 'xpci-test-ca');
  const otherCaRoot = selfSigned(dir, 'other-ca');
  return {
    ca: ca.cert,
    backend: signed(dir, 'backend', '/CN=localhost', ca, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n'),
    client: signed(dir, 'client', `/${ALLOWED_SUBJECT}`, ca),
    otherSubject: signed(dir, 'mallory', '/CN=mallory', ca),
    otherCa: signed(dir, 'foreign', `/${ALLOWED_SUBJECT}`, otherCaRoot),
  };
}
