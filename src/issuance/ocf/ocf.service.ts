import { createHash } from 'node:crypto';
import { strToU8, zipSync } from 'fflate';
import type { Clock } from '../../platform/clock.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import { fromCents } from '../../platform/money.ts';
import type { OfferingRow } from '../offerings/offerings.repo.ts';
import type { OcfRepo } from './ocf.repo.ts';
import type { OcfValidator } from './ocf-validator.ts';

/** The OCF release the vendored schemas fix (`ocf_version` is a `const` in the manifest schema). */
export const OCF_VERSION = '1.2.1-alpha+main';
const RULE_144_LEGEND_ID = 'legend-rule-144';
const RULE_144_LEGEND_TEXT =
  'THE SECURITIES REPRESENTED HEREBY HAVE NOT BEEN REGISTERED UNDER THE SECURITIES ACT OF 1933, AS AMENDED (THE "ACT"), AND ARE "RESTRICTED SECURITIES" AS DEFINED IN RULE 144 UNDER THE ACT. THEY MAY NOT BE SOLD, PLEDGED OR OTHERWISE TRANSFERRED EXCEPT UNDER AN EFFECTIVE REGISTRATION STATEMENT OR AN EXEMPTION FROM REGISTRATION UNDER THE ACT AND APPLICABLE STATE SECURITIES LAWS.';

/** How each offering exemption is named in an issuance's `security_law_exemptions`. */
const EXEMPTION_TEXT: Record<OfferingRow['exemptionType'], string> = {
  reg_d_506b: 'Regulation D, Rule 506(b)',
  reg_d_506c: 'Regulation D, Rule 506(c)',
  reg_cf: 'Regulation Crowdfunding, Section 4(a)(6)',
  reg_a_tier_1: 'Regulation A, Tier 1',
  reg_a_tier_2: 'Regulation A, Tier 2',
  reg_s: 'Regulation S',
};

/** What the issuer record may lack for OCF's issuer object; given at export time instead. */
export type OcfIssuerOverrides = { formationDate?: string; countryOfFormation?: string; countrySubdivisionOfFormation?: string };

/** An OCF package: each file's JSON by its name in the zip, and the zip itself. */
export type OcfPackage = { files: Record<string, unknown>; zip: Uint8Array };

/**
 * Exports an issuer's cap table from the share ledger in the Open Cap Format: the manifest (with
 * the issuer), stakeholders (the holders), stock classes (equity and preferred classes of the
 * issuer's offerings), stock legend templates (the Rule 144 legend on restricted entries) and the
 * transactions (each entry's issuance; a correction's cancellation, or its re-issuance with the
 * new entry's issuance). Every file is validated against the vendored OCF schemas before it is
 * returned. Classes of other categories (debt, convertible, revenue share, fund interest) are not
 * stock and are left out, as the manifest's comments say.
 */
export function ocfService(deps: {
  repo: OcfRepo;
  validator: () => OcfValidator;
  clock: Clock;
  legalNames: (orgId: string, userIds: string[]) => Promise<Map<string, string>>;
}) {
  return {
    /** NOT_FOUND for an unknown issuer (or one of another org when `orgId` is set); INVALID_STATE without formation date and country. */
    async export(issuerId: string, orgId: string | undefined, overrides: OcfIssuerOverrides = {}): Promise<OcfPackage> {
      const issuer = await deps.repo.issuer(issuerId);
      if (!issuer || (orgId !== undefined && issuer.orgId !== orgId)) throw notFound('issuer');
      const formationDate = overrides.formationDate ?? issuer.formationDate;
      const country = overrides.countryOfFormation ?? issuer.countryOfFormation;
      const subdivision = overrides.countrySubdivisionOfFormation ?? issuer.countrySubdivisionOfFormation;
      if (!formationDate || !country) {
        throw new AppError(
          'INVALID_STATE',
          'OCF needs the issuer’s formation date and country of formation: pass formation_date and country_of_formation',
          [{ field: formationDate ? 'country_of_formation' : 'formation_date', message: 'is required for this issuer' }],
        );
      }
      const ledger = await deps.repo.ledger(issuer.id);
      const offeringById = new Map(ledger.offerings.map((row) => [row.id, row]));
      const stockClasses = ledger.classes.filter((row) => row.category === 'equity' || row.category === 'preferred_equity');
      const stockClassIds = new Set(stockClasses.map((row) => row.id));
      const entries = ledger.shares.filter((row) => stockClassIds.has(row.securityClassId));
      const names = await deps.legalNames(
        issuer.orgId,
        entries.map((row) => row.userId),
      );
      const now = deps.clock.now();
      const prefixOf = new Map(stockClasses.map((row, index) => [row.id, `C${index + 1}-`]));
      const counters = new Map<string, number>();
      const customId = (classId: string) => {
        const next = (counters.get(classId) ?? 0) + 1;
        counters.set(classId, next);
        return `${prefixOf.get(classId)}${next}`;
      };

      const stockClassesFile = {
        file_type: 'OCF_STOCK_CLASSES_FILE',
        items: stockClasses.map((row, index) => ({
          object_type: 'STOCK_CLASS',
          id: row.id,
          name: `${offeringById.get(row.offeringId)?.name ?? 'Offering'}: ${row.name}`,
          class_type: row.category === 'preferred_equity' ? 'PREFERRED' : 'COMMON',
          default_id_prefix: prefixOf.get(row.id)!,
          initial_shares_authorized: String(row.unitsAuthorized),
          votes_per_share: '1',
          price_per_share: { amount: fromCents(row.pricePerUnitCents), currency: offeringById.get(row.offeringId)?.currency ?? 'USD' },
          seniority: String(index + 1),
          comments: [`Security class of offering ${row.offeringId}`],
        })),
      };
      const restricted = entries.some((row) => row.restricted);
      const legendsFile = {
        file_type: 'OCF_STOCK_LEGEND_TEMPLATES_FILE',
        items: restricted
          ? [
              {
                object_type: 'STOCK_LEGEND_TEMPLATE',
                id: RULE_144_LEGEND_ID,
                name: 'Rule 144 restricted securities',
                text: RULE_144_LEGEND_TEXT,
              },
            ]
          : [],
      };
      const holders = [...new Set(entries.map((row) => row.userId))];
      const stakeholdersFile = {
        file_type: 'OCF_STAKEHOLDERS_FILE',
        items: holders.map((userId) => ({
          object_type: 'STAKEHOLDER',
          id: userId,
          name: { legal_name: names.get(userId) ?? `Investor ${userId}` },
          stakeholder_type: 'INDIVIDUAL',
          current_relationships: ['INVESTOR'],
          ...(names.has(userId) ? {} : { comments: ['No legal name on record for this holder'] }),
        })),
      };

      type Transaction = Record<string, unknown> & { date: string; object_type: string };
      const transactions: Transaction[] = [];
      for (const row of entries) {
        const offering = offeringById.get(row.offeringId)!;
        transactions.push({
          object_type: 'TX_STOCK_ISSUANCE',
          id: `issuance-${row.id}`,
          security_id: row.id,
          date: row.acquisitionDate,
          custom_id: customId(row.securityClassId),
          stakeholder_id: row.userId,
          stock_class_id: row.securityClassId,
          share_price: { amount: fromCents(row.pricePerUnitCents), currency: row.currency },
          quantity: String(row.units),
          cost_basis: { amount: fromCents(row.costBasisCents), currency: row.currency },
          stock_legend_ids: row.restricted ? [RULE_144_LEGEND_ID] : [],
          security_law_exemptions: [{ description: EXEMPTION_TEXT[offering.exemptionType], jurisdiction: 'US' }],
          consideration_text: `Subscription ${row.subscriptionId}`,
          ...(row.restrictedUntil ? { comments: [`Restricted under Rule 144 until ${row.restrictedUntil}`] } : {}),
        });
      }
      const entryIds = new Set(entries.map((row) => row.id));
      for (const cancellation of ledger.cancellations) {
        if (!entryIds.has(cancellation.shareId)) continue;
        const cancelled = entries.find((row) => row.id === cancellation.shareId)!;
        const date = cancellation.createdAt.toISOString().slice(0, 10);
        transactions.push(
          cancellation.reissuedShareId
            ? {
                object_type: 'TX_STOCK_REISSUANCE',
                id: `reissuance-${cancellation.id}`,
                security_id: cancellation.shareId,
                date,
                resulting_security_ids: [cancellation.reissuedShareId],
                reason_text: cancellation.reason,
              }
            : {
                object_type: 'TX_STOCK_CANCELLATION',
                id: `cancellation-${cancellation.id}`,
                security_id: cancellation.shareId,
                date,
                quantity: String(cancelled.units),
                reason_text: cancellation.reason,
              },
        );
      }
      // Date order; on one date an entry's issuance before its correction.
      const rank = (type: string) => (type === 'TX_STOCK_ISSUANCE' ? 0 : 1);
      transactions.sort((a, b) => a.date.localeCompare(b.date) || rank(a.object_type) - rank(b.object_type));
      const transactionsFile = { file_type: 'OCF_TRANSACTIONS_FILE', items: transactions };

      const dataFiles: Record<string, unknown> = {
        'StockClasses.ocf.json': stockClassesFile,
        'StockLegends.ocf.json': legendsFile,
        'Stakeholders.ocf.json': stakeholdersFile,
        'Transactions.ocf.json': transactionsFile,
      };
      const text = Object.fromEntries(Object.entries(dataFiles).map(([name, file]) => [name, `${JSON.stringify(file, null, 2)}\n`]));
      const ref = (name: string) => [{ filepath: `./${name}`, md5: createHash('md5').update(text[name]!).digest('hex') }];
      const left = ledger.classes.length - stockClasses.length;
      const manifest = {
        ocf_version: OCF_VERSION,
        file_type: 'OCF_MANIFEST_FILE',
        issuer: {
          object_type: 'ISSUER',
          id: issuer.id,
          legal_name: issuer.legalName,
          formation_date: formationDate,
          country_of_formation: country,
          ...(subdivision ? { country_subdivision_of_formation: subdivision } : {}),
        },
        as_of: now.toISOString().slice(0, 10),
        generated_at: now.toISOString(),
        stock_plans_files: [],
        stock_legend_templates_files: ref('StockLegends.ocf.json'),
        stock_classes_files: ref('StockClasses.ocf.json'),
        vesting_terms_files: [],
        valuations_files: [],
        transactions_files: ref('Transactions.ocf.json'),
        stakeholders_files: ref('Stakeholders.ocf.json'),
        comments: [
          'Exported by Tranche from its share ledger',
          ...(left > 0
            ? [`${left} security class(es) that are not stock (debt, convertible, revenue share, fund interest) are not included`]
            : []),
        ],
      };
      const files: Record<string, unknown> = { 'Manifest.ocf.json': manifest, ...dataFiles };
      text['Manifest.ocf.json'] = `${JSON.stringify(manifest, null, 2)}\n`;
      const validator = deps.validator();
      for (const [name, file] of Object.entries(files)) {
        const errors = validator.validate(file);
        // Our own output failing the schema is a defect, never the caller's input.
        if (errors.length > 0) throw new Error(`OCF export: ${name} fails its schema: ${JSON.stringify(errors.slice(0, 5))}`);
      }
      const zip = zipSync(Object.fromEntries(Object.entries(text).map(([name, content]) => [name, strToU8(content)])));
      return { files, zip };
    },
  };
}

export type OcfService = ReturnType<typeof ocfService>;
