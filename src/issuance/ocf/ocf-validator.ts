import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS with a default export: under NodeNext the function is its `default`.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/** The vendored Open Cap Format schemas (vendor/ocf/schema, draft-07; upstream version in vendor/ocf/README.md). */
export const OCF_SCHEMA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../vendor/ocf/schema');
const SCHEMA_BASE = 'https://raw.githubusercontent.com/Open-Cap-Table-Coalition/Open-Cap-Format-OCF/main/schema/';

/** OCF `file_type` → the schema of that file, under `schema/files/`. */
const FILE_SCHEMAS: Record<string, string> = {
  OCF_MANIFEST_FILE: 'files/OCFManifestFile.schema.json',
  OCF_STAKEHOLDERS_FILE: 'files/StakeholdersFile.schema.json',
  OCF_STOCK_CLASSES_FILE: 'files/StockClassesFile.schema.json',
  OCF_STOCK_LEGEND_TEMPLATES_FILE: 'files/StockLegendTemplatesFile.schema.json',
  OCF_STOCK_PLANS_FILE: 'files/StockPlansFile.schema.json',
  OCF_TRANSACTIONS_FILE: 'files/TransactionsFile.schema.json',
  OCF_VALUATIONS_FILE: 'files/ValuationsFile.schema.json',
  OCF_VESTING_TERMS_FILE: 'files/VestingTermsFile.schema.json',
  OCF_FINANCINGS_FILE: 'files/FinancingsFile.schema.json',
  OCF_DOCUMENTS_FILE: 'files/DocumentsFile.schema.json',
};

function schemaFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory() ? schemaFiles(path.join(dir, entry.name)) : entry.name.endsWith('.json') ? [path.join(dir, entry.name)] : [],
    );
}

/** One validation failure: where in the file (JSON pointer) and what the schema says. */
export type OcfError = { path: string; message: string };

/**
 * Validates OCF files offline: every vendored schema is added to one Ajv (draft-07, formats on),
 * so `$ref`s resolve locally and nothing is fetched. Built once on first use (about 175 schemas).
 */
export function ocfValidator(schemaDir = OCF_SCHEMA_DIR) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  /** `object_type` (`TX_STOCK_ISSUANCE`, `STAKEHOLDER`, ...) → the `$id` of the object schema that fixes it. */
  const objectSchemas = new Map<string, string>();
  for (const file of schemaFiles(schemaDir)) {
    const schema = JSON.parse(fs.readFileSync(file, 'utf8')) as { $id: string; properties?: { object_type?: { const?: string } } };
    ajv.addSchema(schema);
    const objectType = schema.properties?.object_type?.const;
    if (objectType && schema.$id.includes('/schema/objects/')) objectSchemas.set(objectType, schema.$id);
  }
  const compiled = new Map<string, ValidateFunction>();
  const errorsOf = (validate: ValidateFunction, value: unknown): OcfError[] =>
    validate(value)
      ? []
      : (validate.errors ?? []).map((error) => ({ path: error.instancePath || '/', message: error.message ?? 'is invalid' }));
  return {
    /** The errors of one OCF object against the schema its `object_type` names; empty when it validates. */
    validateObject(object: unknown): OcfError[] {
      const objectType = (object as { object_type?: unknown } | null)?.object_type;
      const id = typeof objectType === 'string' ? objectSchemas.get(objectType) : undefined;
      if (!id) return [{ path: '/object_type', message: `unknown OCF object_type ${String(objectType)}` }];
      return errorsOf(ajv.getSchema(id)!, object);
    },

    /** The errors of `file` against the schema its `file_type` names; empty when it validates. */
    validate(file: unknown): OcfError[] {
      const fileType = (file as { file_type?: unknown } | null)?.file_type;
      const schemaPath = typeof fileType === 'string' ? FILE_SCHEMAS[fileType] : undefined;
      if (!schemaPath) return [{ path: '/file_type', message: `unknown OCF file_type ${String(fileType)}` }];
      let validate = compiled.get(schemaPath);
      if (!validate) {
        validate = ajv.getSchema(`${SCHEMA_BASE}${schemaPath}`);
        if (!validate) throw new Error(`OCF schema ${schemaPath} is missing from ${schemaDir}`);
        compiled.set(schemaPath, validate);
      }
      return errorsOf(validate, file);
    },
  };
}

export type OcfValidator = ReturnType<typeof ocfValidator>;
