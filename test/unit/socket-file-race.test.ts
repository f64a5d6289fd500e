/**
 * The ring socket's file against a local user who can write the folder it is created in: the
 * folder is checked as strictly as the state directory, and the socket's mode and owner are set
 * where nobody else can swap the name (a private folder), so a symlink planted at the socket path
 * between bind and chmod can never make root change another file's permissions.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenOnSocket, prepareSocketPath, removeSocketFile } from '../../src/backend/server/socket-file.js';

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

describe('socket folder and symlink race', () => {
  test('a socket folder writable by other users is refused, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-sockdir-'));
    try {
      const open = join(dir, 'open');
      mkdirSync(open);
      chmodSync(open, 0o777);
      await assert.rejects(prepareSocketPath(join(open, 'xpci.sock'), { allowUids: [], allowGids: [] }),
        new RegExp(`${open}.*writable by other users`));
      const sticky = join(dir, 'sticky');
      mkdirSync(sticky);
      chmodSync(sticky, 0o1777);
      await assert.rejects(prepareSocketPath(join(sticky, 'xpci.sock'), { allowUids: [], allowGids: [] }), /writable by other users/);
      if (asRoot) {
        const foreign = join(dir, 'foreign');
        mkdirSync(foreign);
        chmodSync(foreign, 0o755);
        const { chownSync } = await import('node:fs');
        chownSync(foreign, NOBODY, NOBODY);
        await assert.rejects(prepareSocketPath(join(foreign, 'xpci.sock'), { allowUids: [], allowGids: [] }), new RegExp(`owned by uid ${NOBODY}`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unprivileged user swapping the socket path for a symlink in a loop never gets another file chmod-ed',
    { skip: !asRoot && 'needs root to run the attacker as uid 65534' }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'xpci-race-'));
      const victim = join(dir, 'victim');
      writeFileSync(victim, 'secret\n', { mode: 0o600 });
      const arena = join(dir, 'arena');
      mkdirSync(arena);
      chmodSync(dir, 0o711);
      chmodSync(arena, 0o777); // the attacker can write the folder the socket is created in
      const path = join(arena, 'xpci.sock');
      // The attacker: replace whatever is at the socket path with a symlink to the victim, forever.
      const script = `const fs=require('fs');const [p,v]=process.argv.slice(1);` +
        `for(;;){try{fs.unlinkSync(p)}catch{}try{fs.symlinkSync(v,p)}catch{}}`;
      const attacker = spawn('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, '-e', script, path, victim],
        { stdio: 'ignore' });
      try {
        const { lstatSync } = await import('node:fs');
        const planted = (): boolean => { try { return lstatSync(path).isSymbolicLink(); } catch { return false; } };
        while (!planted()) await new Promise((resolve) => setTimeout(resolve, 5));
        for (let round = 0; round < 200; round++) {
          const server = createServer();
          try {
            const inode = await listenOnSocket(server, path, { allowUids: [4321], allowGids: [] });
            removeSocketFile(path, inode);
          } catch {
            // The attacker's symlink held the name: refusing is the right outcome.
          }
          await new Promise<void>((resolve) => server.close(() => resolve()));
          assert.equal(statSync(victim).mode & 0o777, 0o600, `round ${round}: the victim's mode was changed`);
          assert.equal(statSync(victim).uid, 0);
        }
        assert.deepEqual(readdirSync(arena).filter((name) => name.startsWith('.xpci-')), [], 'no private folder left behind');
      } finally {
        attacker.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
