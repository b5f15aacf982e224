import { z } from 'zod';
import type { FieldError } from '../../platform/http/errors.ts';

const US_STATES = new Set(
  (
    'AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC ' +
    'SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP AA AE AP'
  ).split(' '),
);

const digits = (count: number) => z.string().regex(new RegExp(`^\\d{${count}}$`), `must be exactly ${count} digits, no dashes or spaces`);

/** The PII fields of the KYC example in spec/kyc-and-accreditation.txt, all optional individually. */
export const piiFields = {
  firstName: z.string().trim().min(1).max(100),
  lastName: z.string().trim().min(1).max(100),
  address: z.string().trim().min(1).max(200),
  city: z.string().trim().min(1).max(100),
  state: z.string().regex(/^[A-Z]{2,3}$/, 'must be a 2-letter state or province code in capitals'),
  zip: z.string().regex(/^[A-Z0-9][A-Z0-9 -]{1,9}$/, 'must be a postal code'),
  country: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 3166-1 alpha-3 code such as USA'),
  ssn: digits(9),
  ssnLast4: digits(4),
  dobMonth: digits(2),
  dobDay: digits(2),
  dobYear: digits(4),
  email: z.email(),
  telephone: z.string().regex(/^\+?\d{10,15}$/, 'must be 10-15 digits, optionally starting with +'),
  idType: z.enum(['driverLicense', 'passport', 'stateId', 'nationalId']),
  idIssuer: z.string().regex(/^[A-Z]{2,3}$/, 'must be a 2-3 letter state or country code in capitals'),
  idNumber: z.string().regex(/^[A-Za-z0-9-]{1,30}$/, 'must be 1-30 letters, digits or dashes'),
};

export const piiPatch = z.strictObject(piiFields).partial();
export type PiiRecord = z.infer<typeof piiPatch>;

export const createPiiBody = piiPatch.extend({
  userId: z.uuid().optional(),
  firstName: piiFields.firstName,
  lastName: piiFields.lastName,
});

export const updatePiiBody = piiPatch.refine((body) => Object.keys(body).length > 0, { message: 'send at least one field to change' });

/** Rules that span fields, checked on the record as it will be stored (after a PATCH merge). */
export function crossFieldErrors(record: PiiRecord, now = new Date()): FieldError[] {
  const errors: FieldError[] = [];
  if (record.ssn !== undefined && record.ssnLast4 !== undefined) {
    errors.push({ field: 'ssnLast4', message: 'send either ssn or ssnLast4, not both' });
  }
  const dobParts = [record.dobYear, record.dobMonth, record.dobDay];
  if (dobParts.some((part) => part !== undefined)) {
    const missing = (['dobYear', 'dobMonth', 'dobDay'] as const).find((field) => record[field] === undefined);
    if (missing) {
      errors.push({ field: missing, message: 'is required when any part of the date of birth is given' });
    } else {
      const [year, month, day] = dobParts.map(Number) as [number, number, number];
      const date = new Date(Date.UTC(year, month - 1, day));
      if (month < 1 || month > 12) errors.push({ field: 'dobMonth', message: 'must be 01-12' });
      else if (date.getUTCMonth() !== month - 1 || day < 1) errors.push({ field: 'dobDay', message: 'is not a day of that month' });
      else if (year < 1900 || date > now) errors.push({ field: 'dobYear', message: 'must give a date of birth between 1900 and today' });
    }
  }
  if (record.country === 'USA') {
    if (record.state !== undefined && !US_STATES.has(record.state)) {
      errors.push({ field: 'state', message: 'must be a US state, territory or military code' });
    }
    if (record.zip !== undefined && !/^\d{5}(-\d{4})?$/.test(record.zip)) {
      errors.push({ field: 'zip', message: 'must be a US ZIP code: 5 digits or ZIP+4' });
    }
  }
  return errors;
}

export const piiResponse = z.object({
  user_id: z.uuid(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  address: z.string().nullable(),
  city: z.string().nullable(),
  state: z.string().nullable(),
  zip: z.string().nullable(),
  country: z.string().nullable(),
  ssn: z.string().nullable().describe('masked: *****1234'),
  dob_month: z.string().nullable(),
  dob_day: z.string().nullable(),
  dob_year: z.string().nullable(),
  email: z.string().nullable(),
  telephone: z.string().nullable(),
  id_type: z.string().nullable(),
  id_issuer: z.string().nullable(),
  id_number: z.string().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
});
