/** Where a frontend looks for the backend when no path is given: $XPCI_SOCKET, else the system socket. */
export const SYSTEM_SOCKET_PATH = '/run/xpci/xpci.sock';

export function defaultConnectPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.XPCI_SOCKET || SYSTEM_SOCKET_PATH;
}
