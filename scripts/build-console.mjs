// `npm install`'s prepare step: builds the back-office console (console/ -> console/dist) so that
// `npm install && npm start` serves it at /console. Skipped, with a note, where the console's
// sources or Vite are absent (a production install with --omit=dev, a container's dependency
// stage); the server then answers /console with how to build it.
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const config = path.join(root, 'console', 'vite.config.ts');
let vite;
try {
  vite = path.join(path.dirname(createRequire(path.join(root, 'package.json')).resolve('vite/package.json')), 'bin', 'vite.js');
} catch {
  vite = undefined;
}
if (!existsSync(config) || !vite) {
  process.stdout.write('console: not built (its sources or Vite are not installed here)\n');
  process.exit(0);
}
const result = spawnSync(process.execPath, [vite, 'build', '-c', config], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
