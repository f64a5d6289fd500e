/**
 * Host side of the command agent that init.sh serves on the virtio-serial port org.xpci.agent
 * (protocol in init.sh's header). One request at a time; the guest enforces each command's
 * timeout itself (it kills the command's process group), so a guest that stays silent past it is
 * a hung guest, which the caller handles.
 */
import type { Socket } from 'node:net';

export interface AgentResult {
  /** 'timeout': the guest killed the command at its deadline */
  status: 'exited' | 'timeout';
  exitCode: number;
  stdout: string;
  stderr: string;
}

interface PendingRequest {
  id: number;
  resolve(result: AgentResult): void;
  reject(error: Error): void;
}

export class AgentChannel {
  /** Resolves with the guest's kernel release once the agent has started. */
  readonly ready: Promise<string>;
  private buffered = '';
  private pending: PendingRequest | null = null;
  private section: 'none' | 'stdout' | 'stderr' = 'none';
  private stdoutLines: string[] = [];
  private stderrLines: string[] = [];
  private nextId = 1;
  private closedError: Error | null = null;
  private markReady!: (release: string) => void;
  private failReady!: (error: Error) => void;

  constructor(private readonly socket: Socket) {
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => undefined);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (error) => this.fail(new Error(`agent channel: ${error.message}`)));
    socket.on('close', () => this.fail(new Error('agent channel closed')));
  }

  /** Send one bash script; resolves when the guest reports how it ended. */
  request(script: string, timeoutSeconds: number, mergeStderr: boolean): Promise<AgentResult> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending) return Promise.reject(new Error('agent channel: a request is already in flight'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending = { id, resolve, reject };
      this.section = 'none';
      this.stdoutLines = [];
      this.stderrLines = [];
      const encoded = Buffer.from(script).toString('base64');
      this.socket.write(`XPCI-EXEC ${id} ${timeoutSeconds} ${mergeStderr ? 'merge' : 'split'} ${encoded}\n`);
    });
  }

  /** Ask the agent to sync and power the guest off. */
  shutdown(): void {
    if (!this.closedError) this.socket.write('XPCI-SHUTDOWN\n');
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    this.failReady(error);
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).replace(/\r$/, '');
      this.buffered = this.buffered.slice(newline + 1);
      this.handleLine(line);
    }
  }

  private handleLine(line: string): void {
    const [verb, ...fields] = line.split(' ');
    const pending = this.pending;
    switch (verb) {
      case 'XPCI-READY':
        this.markReady(fields.join(' '));
        return;
      case 'XPCI-BEGIN':
        if (pending && Number(fields[0]) === pending.id) this.section = 'stdout';
        return;
      case 'XPCI-SEP':
        if (pending && Number(fields[0]) === pending.id) this.section = 'stderr';
        return;
      case 'XPCI-END': {
        if (!pending || Number(fields[0]) !== pending.id) return;
        this.pending = null;
        this.section = 'none';
        const [, status, rc] = fields;
        if (status !== 'exited' && status !== 'timeout') {
          pending.reject(new Error(`agent: request ${pending.id} failed in the guest (${status})`));
          return;
        }
        pending.resolve({
          status,
          exitCode: Number(rc),
          stdout: Buffer.from(this.stdoutLines.join(''), 'base64').toString('utf8'),
          stderr: Buffer.from(this.stderrLines.join(''), 'base64').toString('utf8'),
        });
        return;
      }
      default:
        if (this.section === 'stdout') this.stdoutLines.push(line);
        else if (this.section === 'stderr') this.stderrLines.push(line);
    }
  }
}
