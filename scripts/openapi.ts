/**
 * Writes the OpenAPI document the server serves at /openapi.json to `openapi.json` at the repo root
 * (`npm run openapi`), or with `--check` exits 1 when the committed file differs from it.
 */
import fs from 'node:fs';
import { openApiDocument } from '../src/openapi.ts';

const target = new URL('../openapi.json', import.meta.url);
const text = `${JSON.stringify(await openApiDocument(), null, 2)}\n`;
if (process.argv.includes('--check')) {
  const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
  if (current !== text) {
    console.error('openapi.json is stale: run `npm run openapi` and commit it.');
    process.exit(1);
  }
  console.log('openapi.json is current.');
} else {
  fs.writeFileSync(target, text);
  console.log(`Wrote ${target.pathname}`);
}
