import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { FormEvent } from 'react';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, formatTotal, MoreRows, usePagedList } from '../ui.tsx';

type Offering = Awaited<ReturnType<typeof listOfferings>>['items'][number];
/** One page of 100 offerings (`page` from 1). */
const listOfferings = (page = 1) => unwrap(api.GET('/admin/offerings', { params: { query: { limit: 100, page } } }));
const EXEMPTIONS = ['reg_d_506b', 'reg_d_506c', 'reg_cf', 'reg_a_tier_1', 'reg_a_tier_2', 'reg_s'] as const;

/** Committed against the maximum, as a labelled bar. */
function Funding({ offering }: { offering: Offering }) {
  const { raised, maximum, target, currency } = offering.amounts;
  return (
    <div className="funding">
      <meter aria-label={`Funding of ${offering.name}`} min={0} max={Number(maximum)} low={Number(target)} value={Number(raised)}>
        {raised} of {maximum}
      </meter>
      <span>
        {raised} of {maximum} {currency} committed (target {target})
      </span>
    </div>
  );
}

/** Offerings of the reviewer's orgs (drafts too): create a draft, add a class, open, pause, close. */
export function Offerings({ orgId }: { orgId: string | undefined }) {
  const client = useQueryClient();
  const list = usePagedList({ queryKey: ['offerings'], fetchPage: (next) => listOfferings(Number(next ?? 1)) });
  const transition = useMutation({
    mutationFn: ({ id, action }: { id: string; action: 'open' | 'pause' | 'close' }) => {
      const options = { params: { path: { id } } };
      if (action === 'open') return unwrap(api.POST('/admin/offerings/{id}/open', options));
      if (action === 'pause') return unwrap(api.POST('/admin/offerings/{id}/pause', options));
      return unwrap(api.POST('/admin/offerings/{id}/close', options));
    },
    onSettled: () => client.invalidateQueries({ queryKey: ['offerings'] }),
  });
  return (
    <div className="stack">
      <section aria-labelledby="offerings-title">
        <h2 id="offerings-title">
          Offerings <span className="count">{formatTotal(list.data?.meta)}</span>
        </h2>
        <ErrorNote error={list.error} />
        <ErrorNote error={transition.error} />
        <table>
          <thead>
            <tr>
              <th scope="col">Offering</th>
              <th scope="col">Issuer</th>
              <th scope="col">Exemption</th>
              <th scope="col">Status</th>
              <th scope="col">Funding</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.items ?? []).map((offering) => (
              <tr key={offering.id}>
                <td>
                  {offering.name}
                  <br />
                  <code>{offering.id}</code>
                </td>
                <td>{offering.issuer.legal_name}</td>
                <td>{offering.exemption_type.replaceAll('_', ' ')}</td>
                <td>
                  <Badge value={offering.status} />
                </td>
                <td>
                  <Funding offering={offering} />
                </td>
                <td className="actions">
                  {offering.status === 'draft' || offering.status === 'paused' ? (
                    <button type="button" onClick={() => transition.mutate({ id: offering.id, action: 'open' })}>
                      Open {offering.name}
                    </button>
                  ) : null}
                  {offering.status === 'open' ? (
                    <button type="button" onClick={() => transition.mutate({ id: offering.id, action: 'pause' })}>
                      Pause {offering.name}
                    </button>
                  ) : null}
                  {offering.status !== 'closed' && offering.status !== 'draft' ? (
                    <button type="button" className="danger" onClick={() => transition.mutate({ id: offering.id, action: 'close' })}>
                      Close {offering.name}
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <MoreRows list={list} label="offerings" />
      </section>
      <NewOffering orgId={orgId} />
      <NewSecurity offerings={list.data?.items ?? []} />
      <NewDocument offerings={list.data?.items ?? []} />
    </div>
  );
}

const text = (form: FormData, name: string) => {
  const value = form.get(name);
  return typeof value === 'string' ? value.trim() : '';
};

function NewOffering({ orgId }: { orgId: string | undefined }) {
  const client = useQueryClient();
  const create = useMutation({
    mutationFn: async (form: FormData) => {
      const issuer = await unwrap(api.POST('/admin/issuers', { body: { legalName: text(form, 'issuer'), ...(orgId ? { orgId } : {}) } }));
      return unwrap(
        api.POST('/admin/offerings', {
          body: {
            issuerId: issuer.id,
            name: text(form, 'name'),
            exemptionType: text(form, 'exemption') as (typeof EXEMPTIONS)[number],
            currency: 'USD',
            targetAmount: text(form, 'target'),
            maximumAmount: text(form, 'maximum'),
            minimumInvestment: text(form, 'minimum'),
            deadline: text(form, 'deadline'),
          },
        }),
      );
    },
    onSuccess: () => client.invalidateQueries({ queryKey: ['offerings'] }),
  });
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    create.mutate(new FormData(event.currentTarget));
  };
  return (
    <section aria-labelledby="new-offering-title">
      <h2 id="new-offering-title">New draft offering</h2>
      <form className="grid-form" onSubmit={submit}>
        <label htmlFor="issuer">Issuer legal name</label>
        <input id="issuer" name="issuer" required />
        <label htmlFor="name">Offering name</label>
        <input id="name" name="name" required />
        <label htmlFor="exemption">Exemption</label>
        <select id="exemption" name="exemption" defaultValue="reg_d_506c">
          {EXEMPTIONS.map((exemption) => (
            <option key={exemption} value={exemption}>
              {exemption.replaceAll('_', ' ')}
            </option>
          ))}
        </select>
        <label htmlFor="target">Target amount (USD)</label>
        <input id="target" name="target" required pattern="\d+(\.\d{2})?" placeholder="100000.00" />
        <label htmlFor="maximum">Maximum amount (USD)</label>
        <input id="maximum" name="maximum" required pattern="\d+(\.\d{2})?" placeholder="500000.00" />
        <label htmlFor="minimum">Minimum investment (USD)</label>
        <input id="minimum" name="minimum" required pattern="\d+(\.\d{2})?" placeholder="1000.00" />
        <label htmlFor="deadline">Deadline</label>
        <input id="deadline" name="deadline" type="date" required />
        <button type="submit" disabled={create.isPending}>
          Create draft
        </button>
      </form>
      <ErrorNote error={create.error} />
      {create.data ? <p role="status">Draft {create.data.name} created.</p> : null}
    </section>
  );
}

type SecurityCategory = 'equity' | 'preferred_equity' | 'debt' | 'convertible' | 'revenue_share' | 'fund_interest';
const SECURITY_CATEGORIES: [SecurityCategory, string][] = [
  ['equity', 'Common equity'],
  ['preferred_equity', 'Preferred equity'],
  ['debt', 'Debt'],
  ['convertible', 'Convertible'],
  ['revenue_share', 'Revenue share'],
  ['fund_interest', 'Fund interest'],
];

function NewSecurity({ offerings }: { offerings: Offering[] }) {
  const client = useQueryClient();
  const add = useMutation({
    mutationFn: (form: FormData) =>
      unwrap(
        api.POST('/admin/offerings/{id}/securities', {
          params: { path: { id: text(form, 'offering') } },
          body: {
            name: text(form, 'class'),
            category: text(form, 'category') as SecurityCategory,
            pricePerUnit: text(form, 'price'),
            unitsAuthorized: Number(text(form, 'units')),
          },
        }),
      ),
    onSuccess: () => client.invalidateQueries({ queryKey: ['offerings'] }),
  });
  return (
    <section aria-labelledby="new-security-title">
      <h2 id="new-security-title">Add a security class</h2>
      <form
        className="grid-form"
        onSubmit={(event) => {
          event.preventDefault();
          add.mutate(new FormData(event.currentTarget));
        }}
      >
        <label htmlFor="offering">Offering of the class</label>
        <select id="offering" name="offering" required>
          {offerings
            .filter((offering) => offering.status !== 'closed')
            .map((offering) => (
              <option key={offering.id} value={offering.id}>
                {offering.name}
              </option>
            ))}
        </select>
        <label htmlFor="class">Class name</label>
        <input id="class" name="class" required placeholder="Series A Preferred" />
        <label htmlFor="category">Category</label>
        <select id="category" name="category" required defaultValue="equity">
          {SECURITY_CATEGORIES.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        <label htmlFor="price">Price per unit (USD)</label>
        <input id="price" name="price" required pattern="\d+(\.\d{2})?" placeholder="10.00" />
        <label htmlFor="units">Units authorized</label>
        <input id="units" name="units" required type="number" min={1} />
        <button type="submit" disabled={add.isPending}>
          Add class
        </button>
      </form>
      <ErrorNote error={add.error} />
      {add.data ? <p role="status">Class {add.data.name} added.</p> : null}
    </section>
  );
}

const DOCUMENT_KINDS = ['subscription_agreement', 'ppm', 'other'] as const;
const DOCUMENT_TYPES = ['application/pdf', 'text/plain', 'text/html'] as const;

/** The file's bytes as base64 (the API takes documents inline, up to its body limit). */
async function base64Of(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (let index = 0; index < bytes.length; index += 0x8000) binary += String.fromCharCode(...bytes.subarray(index, index + 0x8000));
  return btoa(binary);
}

function NewDocument({ offerings }: { offerings: Offering[] }) {
  const upload = useMutation({
    mutationFn: async (form: FormData) => {
      const file = form.get('file');
      if (!(file instanceof File) || file.size === 0) throw new Error('Choose a file');
      const contentType = DOCUMENT_TYPES.find((type) => type === file.type);
      if (!contentType) throw new Error('The file must be a PDF, plain text or HTML');
      return unwrap(
        api.POST('/admin/offerings/{id}/documents', {
          params: { path: { id: text(form, 'document-offering') } },
          body: {
            kind: text(form, 'kind') as (typeof DOCUMENT_KINDS)[number],
            title: text(form, 'title'),
            contentType,
            content: await base64Of(file),
          },
        }),
      );
    },
  });
  return (
    <section aria-labelledby="new-document-title">
      <h2 id="new-document-title">Upload a document</h2>
      <form
        className="grid-form"
        onSubmit={(event) => {
          event.preventDefault();
          upload.mutate(new FormData(event.currentTarget));
        }}
      >
        <label htmlFor="document-offering">Offering of the document</label>
        <select id="document-offering" name="document-offering" required>
          {offerings.map((offering) => (
            <option key={offering.id} value={offering.id}>
              {offering.name}
            </option>
          ))}
        </select>
        <label htmlFor="kind">Kind</label>
        <select id="kind" name="kind">
          {DOCUMENT_KINDS.map((kind) => (
            <option key={kind} value={kind}>
              {kind.replaceAll('_', ' ')}
            </option>
          ))}
        </select>
        <label htmlFor="title">Title</label>
        <input id="title" name="title" required />
        <label htmlFor="file">File (PDF, text or HTML)</label>
        <input id="file" name="file" type="file" accept="application/pdf,text/plain,text/html" required />
        <button type="submit" disabled={upload.isPending}>
          Upload
        </button>
      </form>
      <ErrorNote error={upload.error} />
      {upload.data ? <p role="status">Uploaded {upload.data.title}.</p> : null}
    </section>
  );
}
