/**
 * Writes what is generated from the code (`npm run openapi`): the OpenAPI document the server serves
 * at /openapi.json to `openapi.json`, the TypeScript client's types generated from it
 * (openapi-typescript) to `clients/typescript/src/schema.ts`, and the README's configuration table
 * from `src/config.ts`. With `--check` exits 1 when a committed file differs from what the code
 * generates.
 */
import fs from 'node:fs';
import prettier from 'prettier';
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';
import ts from 'typescript';
import { settingsTable } from '../src/config.ts';
import { openApiDocument } from '../src/openapi.ts';

const document = await openApiDocument();
const header = '// Generated from openapi.json by `npm run openapi` (openapi-typescript). Do not edit.\n\n';
const readmeUrl = new URL('../README.md', import.meta.url);
const readme = fs.readFileSync(readmeUrl, 'utf8');
const marker = /(<!-- settings:start[^>]*-->\n)[\s\S]*?(<!-- settings:end -->)/;
if (!marker.test(readme)) throw new Error('README.md lacks the <!-- settings:start --> ... <!-- settings:end --> markers');
const withTable = readme.replace(marker, (_all, start: string, end: string) => `${start}\n${settingsTable()}\n\n${end}`);
const prettierOptions = await prettier.resolveConfig(readmeUrl.pathname);

const files = [
  { target: readmeUrl, text: await prettier.format(withTable, { ...prettierOptions, parser: 'markdown' }) },
  { target: new URL('../openapi.json', import.meta.url), text: `${JSON.stringify(document, null, 2)}\n` },
  {
    target: new URL('../clients/typescript/src/schema.ts', import.meta.url),
    text:
      header +
      astToString(
        await openapiTS(document as unknown as OpenAPI3, {
          // A request field with a default may be left out.
          defaultNonNullable: false,
          // Any JSON value: TypeScript can't name its recursion inside an interface member (TS2502).
          transform: (_schema, { path }) =>
            path?.match(/\/JsonValue(Input)?$/) ? ts.factory.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword) : undefined,
        }),
      ),
  },
];

if (process.argv.includes('--check')) {
  const stale = files.filter(({ target, text }) => !fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== text);
  for (const { target } of stale) console.error(`${target.pathname} is stale: run \`npm run openapi\` and commit it.`);
  if (stale.length > 0) process.exit(1);
  console.log('openapi.json, the client types and the README configuration table are current.');
} else {
  for (const { target, text } of files) {
    fs.writeFileSync(target, text);
    console.log(`Wrote ${target.pathname}`);
  }
}
