/** The xpci frontend: a dependency-light library (no native addon) that any VM with Node can use. */
export { connect, FrontendClient, type ConnectOptions, type DeviceList, type FrontendEvents } from './client.js';
export { RemoteDevice } from './remote-device.js';
export { DmaWindow } from './dma-window.js';
export type { InterruptKind, InterruptRecord } from '../protocol/ring/messages.js';
export { scanBus, describeScanMismatch, parseRoot, type ScanResult } from './scan.js';
export { ConnectError, Transport, type TransportKind } from './transport.js';
export { openTransport } from './open-transport.js';
export { formatRequestTrace, type TracedRequest } from '../protocol/ring/request-trace.js';
export type { TlsCredentials } from './tls-transport.js';
export { defaultConnectPath } from './default-path.js';
export { ErrorCode, errorCodeName, XpciError, type BarDescriptor, type DeviceDescriptor, type ExportMode } from '../protocol/ring/messages.js';
export { formatAddress, parseAddress, type PciAddress } from '../pci/address.js';
