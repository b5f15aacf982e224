// `npm install`'s prepare step, so that `npm install && npm start` starts fast and serves everything:
//   1. builds the back-office console (console/ -> console/dist), served at /console;
//   2. compiles the server (src/ -> dist/): `npm start` runs the build while it is newer than every
//      source file, which starts about a second sooner than compiling the TypeScript on the fly;
//   3. builds the embedded database's pre-migrated template (node_modules/.cache/tranche), so the
//      first start copies it instead of running initdb (4-9 s).
// Each step is skipped, with a note, where what it needs is absent (a production install with
// --omit=dev, a container's dependency stage that has no sources yet). A failed step fails the
// install, except the template, which the first start builds anyway.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';

const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(path.join(root, 'package.json'));

/**
 * The path of an installed package's file, or undefined when the package is not installed.
 * @param {string} pkg
 * @param {string} file
 */
function installed(pkg, file) {
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file);
  } catch {
    return undefined;
  }
}

/**
 * Runs node with `args` in the root; exits the install with its status when it fails.
 * @param {string[]} args
 * @param {{ optional?: boolean }} [options]
 */
function run(args, options = {}) {
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0 && !options.optional) process.exit(result.status ?? 1);
  return result.status === 0;
}

const vite = installed('vite', 'bin/vite.js');
const consoleConfig = path.join(root, 'console', 'vite.config.ts');
if (existsSync(consoleConfig) && vite) run([vite, 'build', '-c', consoleConfig]);
else process.stdout.write('console: not built (its sources or Vite are not installed here)\n');

const tsc = installed('typescript', 'bin/tsc');
const buildConfig = path.join(root, 'tsconfig.build.json');
if (existsSync(buildConfig) && existsSync(path.join(root, 'src')) && tsc) {
  run([tsc, '-p', buildConfig]);
  process.stdout.write('server: compiled to dist/\n');
  if (!run([path.join(root, 'dist', 'platform', 'db', 'embedded-template.js')], { optional: true })) {
    process.stdout.write('embedded database template: not built now; the first start builds it\n');
  }
} else {
  process.stdout.write('server: not compiled (its sources or TypeScript are not installed here); npm start runs the sources\n');
}
