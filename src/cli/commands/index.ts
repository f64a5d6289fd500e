/**
 * Every CLI command, in the order `xpci --help` lists them. Modules load lazily: a command pulls in
 * the backend, the frontend or pci.ids only when it runs, which matters in a TCG guest where Node
 * module loading is 20-60x slower than on the host.
 */
import type { CommandModule } from 'yargs';

// yargs' CommandModule generics differ per command; the registry only needs the common shape.
type AnyCommand = CommandModule<any, any>;

const loaders: ReadonlyArray<readonly [name: string, load: () => Promise<AnyCommand>]> = [
  ['demo', async () => (await import('./demo.js')).demoCommand],
  ['list', async () => (await import('./list.js')).listCommand],
  ['export', async () => (await import('./export.js')).exportCommand],
  ['lspci', async () => (await import('./lspci.js')).lspciCommand],
  ['setpci', async () => (await import('./setpci.js')).setpciCommand],
  ['bar', async () => (await import('./bar.js')).barCommand],
  ['irq', async () => (await import('./irq.js')).irqCommand],
  ['reset', async () => (await import('./reset.js')).resetCommand],
  ['assignable-add', async () => (await import('./assignable.js')).assignableAddCommand],
  ['assignable-remove', async () => (await import('./assignable.js')).assignableRemoveCommand],
  ['assignable-list', async () => (await import('./assignable.js')).assignableListCommand],
  ['attach', async () => (await import('./hotplug.js')).attachCommand],
  ['detach', async () => (await import('./hotplug.js')).detachCommand],
  ['snapshot', async () => (await import('./snapshot.js')).snapshotCommand],
];

export const commandNames: readonly string[] = loaders.map(([name]) => name);

/**
 * The command modules needed to parse `argv`: only the named command when the first word is one,
 * otherwise all of them (top-level help, typo suggestions).
 */
export async function loadCommands(argv: readonly string[]): Promise<AnyCommand[]> {
  const first = argv.find((word) => !word.startsWith('-'));
  const wanted = loaders.filter(([name]) => name === first);
  return Promise.all((wanted.length > 0 ? wanted : loaders).map(([, load]) => load()));
}
