/** `npm run soak -- --minutes N` (default 10): see soak.ts. Exit status 1 when a check failed. */
import { soak } from './soak.js';

const at = process.argv.indexOf('--minutes');
const minutes = at >= 0 ? Number(process.argv[at + 1]) : 10;
if (!(minutes > 0)) {
  process.stderr.write('usage: npm run soak -- [--minutes N]\n');
  process.exit(2);
}
const figures = await soak(minutes);
process.exitCode = figures.problems.length === 0 ? 0 : 1;
