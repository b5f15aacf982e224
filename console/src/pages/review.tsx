import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useLocation, useParams } from 'wouter';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, Field, formatDate, formatTotal, MoreRows, ReasonAction, StatusFilter, usePagedList } from '../ui.tsx';

type Verification = Awaited<ReturnType<typeof listKyc>>['items'][number];
type Accreditation = Awaited<ReturnType<typeof listAccreditations>>['items'][number];
type Subscription = Awaited<ReturnType<typeof listSubscriptions>>['items'][number];

const KYC_STATUSES = ['needs_review', 'pending', 'action_required', 'approved', 'rejected', 'expired', 'error'] as const;
const REVIEW_STATUSES = ['pending_review', 'under_review', 'more_info_needed', 'approved', 'denied', 'expired'] as const;
const SUBSCRIPTION_STATUSES = [
  'pending_review',
  'pending_payment',
  'pending_signature',
  'draft',
  'approved',
  'completed',
  'rejected',
  'cancelled',
] as const;

// Each reads one page of 100 of its queue: the first, or the one after `cursor` (the last page's `next_cursor`).
const listKyc = (status: string, cursor?: string) =>
  unwrap(
    api.GET('/admin/kyc-verifications', {
      params: { query: { status: status as (typeof KYC_STATUSES)[number], limit: 100, ...(cursor ? { cursor } : {}) } },
    }),
  );
const listAccreditations = (status: string, cursor?: string) =>
  unwrap(
    api.GET('/admin/accreditations', {
      params: { query: { review_status: status as (typeof REVIEW_STATUSES)[number], limit: 100, ...(cursor ? { cursor } : {}) } },
    }),
  );
const listSubscriptions = (status: string, cursor?: string) =>
  unwrap(
    api.GET('/admin/subscriptions', {
      params: { query: { status: status as (typeof SUBSCRIPTION_STATUSES)[number], limit: 100, ...(cursor ? { cursor } : {}) } },
    }),
  );

/**
 * A queue page's state: the open case (`/…/:id`), the status filter (starting at `initialStatus`),
 * the search text and the list for that status; `queue` is what `<Queue>` takes of it.
 */
function useQueue<T>(
  key: string,
  initialStatus: string,
  list: (
    status: string,
    cursor?: string,
  ) => Promise<{ items: T[]; meta: { total: number; total_capped: boolean; limit: number; next_cursor: string | null } }>,
  idOf: (item: T) => string,
) {
  const params = useParams<{ id?: string }>();
  const [status, setStatus] = useState(initialStatus);
  const [search, setSearch] = useState('');
  const query = usePagedList({ queryKey: [key, status], fetchPage: (next) => list(status, next === undefined ? undefined : String(next)) });
  return {
    id: params.id,
    selected: query.data?.items.find((item) => idOf(item) === params.id),
    queue: {
      status,
      onStatus: setStatus,
      items: query.data?.items,
      meta: query.data?.meta,
      list: query,
      error: query.error as unknown,
      idOf,
      search,
      onSearch: setSearch,
      selected: params.id,
    },
  };
}

/** Case list on the left, the open case on the right: a queue with a filter, a search and a count. */
function Queue<T>(props: {
  title: string;
  statuses: readonly string[];
  status: string;
  onStatus: (status: string) => void;
  items: T[] | undefined;
  meta: { total: number; total_capped: boolean } | undefined;
  list: ReturnType<typeof usePagedList<T>>;
  error: unknown;
  idOf: (item: T) => string;
  hrefOf: (item: T) => string;
  columns: { label: string; render: (item: T) => React.ReactNode }[];
  search: string;
  onSearch: (value: string) => void;
  selected?: string;
}) {
  const shown = (props.items ?? []).filter(
    (item) => !props.search || JSON.stringify(item).toLowerCase().includes(props.search.toLowerCase()),
  );
  return (
    <section aria-labelledby="queue-title" className="queue">
      <h2 id="queue-title">
        {props.title} <span className="count">{formatTotal(props.meta)}</span>
      </h2>
      <div className="toolbar">
        <StatusFilter label="Status" value={props.status} options={props.statuses} onChange={props.onStatus} />
        <div className="filter">
          <label htmlFor="search">Search</label>
          <input
            id="search"
            type="search"
            value={props.search}
            onChange={(event) => props.onSearch(event.target.value)}
            placeholder="id, user, status"
          />
        </div>
      </div>
      <ErrorNote error={props.error} />
      <table>
        <thead>
          <tr>
            {props.columns.map((column) => (
              <th key={column.label} scope="col">
                {column.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((item) => (
            <tr key={props.idOf(item)} className={props.selected === props.idOf(item) ? 'selected' : ''}>
              {props.columns.map((column, index) => (
                <td key={column.label}>
                  {index === 0 ? <Link href={props.hrefOf(item)}>{column.render(item)}</Link> : column.render(item)}
                </td>
              ))}
            </tr>
          ))}
          {shown.length === 0 ? (
            <tr>
              <td colSpan={props.columns.length}>Nothing here.</td>
            </tr>
          ) : null}
        </tbody>
      </table>
      <MoreRows list={props.list} label={props.search ? 'items (the search looks in these)' : 'items'} />
    </section>
  );
}

function Timeline({ entries }: { entries: [string, string | null | undefined][] }) {
  return (
    <section aria-label="Timeline">
      <h3>Timeline</h3>
      <ol className="timeline">
        {entries
          .filter(([, at]) => at)
          .map(([what, at]) => (
            <li key={what}>
              <time dateTime={at!}>{formatDate(at)}</time> {what}
            </li>
          ))}
      </ol>
    </section>
  );
}

export function KycQueue() {
  const { id, selected, queue } = useQueue('kyc', 'needs_review', listKyc, (item) => item.verification_id);
  return (
    <div className="split">
      <Queue
        {...queue}
        title="KYC verifications"
        statuses={KYC_STATUSES}
        hrefOf={(item) => `/kyc/${item.verification_id}`}
        columns={[
          { label: 'Verification', render: (item) => item.verification_id.slice(0, 8) },
          { label: 'User', render: (item) => item.user_id.slice(0, 8) },
          { label: 'Status', render: (item) => <Badge value={item.status} /> },
          { label: 'Submitted', render: (item) => formatDate(item.submitted_at) },
        ]}
      />
      {id ? <KycCase id={id} initial={selected} /> : <p className="hint">Open a case to review it.</p>}
    </div>
  );
}

function KycCase({ id, initial }: { id: string; initial: Verification | undefined }) {
  const client = useQueryClient();
  const [result, setResult] = useState<Verification | undefined>();
  const review = useMutation({
    mutationFn: ({ decision, reason }: { decision: 'approve' | 'reject'; reason?: string }) =>
      unwrap(
        api.POST(decision === 'approve' ? '/admin/kyc-verifications/{id}/approve' : '/admin/kyc-verifications/{id}/reject', {
          params: { path: { id } },
          body: reason ? { reason } : {},
        }),
      ),
    onSuccess: async (data) => {
      setResult(data);
      await client.invalidateQueries({ queryKey: ['kyc'] });
    },
  });
  const item = result?.verification_id === id ? result : initial;
  if (!item) return <p className="hint">This case is not in the list shown; change the status filter.</p>;
  const open = item.status === 'needs_review';
  return (
    <article className="case" aria-labelledby="case-title">
      <h2 id="case-title">KYC verification {item.verification_id.slice(0, 8)}</h2>
      <dl>
        <Field label="Status">
          <Badge value={item.status} />
        </Field>
        <Field label="Identity check">
          <Badge value={item.checks.identity} />
        </Field>
        <Field label="Document check">
          <Badge value={item.checks.document} />
        </Field>
        <Field label="User">{item.user_id}</Field>
        <Field label="Org">{item.org_id}</Field>
      </dl>
      <div className="actions">
        <button type="button" disabled={!open || review.isPending} onClick={() => review.mutate({ decision: 'approve' })}>
          Approve
        </button>
        <ReasonAction
          label="Reject"
          reasonLabel="Reason for rejecting"
          danger
          disabled={!open || review.isPending}
          onSubmit={(reason) => review.mutate({ decision: 'reject', reason })}
        />
      </div>
      <ErrorNote error={review.error} />
      <Timeline
        entries={[
          ['Created', item.created_at],
          ['Submitted to the provider', item.submitted_at],
          [`Completed: ${item.status.replaceAll('_', ' ')}`, item.completed_at],
        ]}
      />
    </article>
  );
}

export function AccreditationQueue() {
  const { id, selected, queue } = useQueue('accreditations', 'pending_review', listAccreditations, (item) => item.id);
  return (
    <div className="split">
      <Queue
        {...queue}
        title="Accreditations"
        statuses={REVIEW_STATUSES}
        hrefOf={(item) => `/accreditations/${item.id}`}
        columns={[
          { label: 'Accreditation', render: (item) => item.id.slice(0, 8) },
          { label: 'Claim', render: (item) => `${item.accreditation_status} (${item.accreditation_basis ?? 'no basis'})` },
          { label: 'Review', render: (item) => <Badge value={item.review_status} /> },
          { label: 'Documents', render: (item) => item.documents.length },
        ]}
      />
      {id ? <AccreditationCase id={id} initial={selected} /> : <p className="hint">Open a case to review it.</p>}
    </div>
  );
}

function AccreditationCase({ id, initial }: { id: string; initial: Accreditation | undefined }) {
  const client = useQueryClient();
  const [result, setResult] = useState<Accreditation | undefined>();
  const [viewing, setViewing] = useState<{ name: string; url: string; expires: string } | undefined>();
  const act = useMutation({
    mutationFn: ({ action, reason }: { action: 'start-review' | 'request-info' | 'approve' | 'deny'; reason?: string }) => {
      const options = { params: { path: { id } }, body: reason ? { reason } : {} } as {
        params: { path: { id: string } };
        body: { reason: string };
      };
      switch (action) {
        case 'start-review':
          return unwrap(api.POST('/admin/accreditations/{id}/start-review', options));
        case 'request-info':
          return unwrap(api.POST('/admin/accreditations/{id}/request-info', options));
        case 'approve':
          return unwrap(api.POST('/admin/accreditations/{id}/approve', options));
        default:
          return unwrap(api.POST('/admin/accreditations/{id}/deny', options));
      }
    },
    onSuccess: async (data) => {
      setResult(data);
      await client.invalidateQueries({ queryKey: ['accreditations'] });
    },
  });
  const download = useMutation({
    mutationFn: async (document: { id: string; file_name: string }) => {
      const link = await unwrap(api.GET('/admin/accreditations/documents/{id}/download', { params: { path: { id: document.id } } }));
      return { name: document.file_name, url: link.url, expires: link.expires_at };
    },
    onSuccess: setViewing,
  });
  const item = result?.id === id ? result : initial;
  if (!item) return <p className="hint">This case is not in the list shown; change the status filter.</p>;
  const decided = item.review_status === 'approved' || item.review_status === 'denied';
  return (
    <article className="case" aria-labelledby="case-title">
      <h2 id="case-title">Accreditation {item.id.slice(0, 8)}</h2>
      <dl>
        <Field label="Review status">
          <Badge value={item.review_status} />
        </Field>
        <Field label="Self-certification">
          {item.accreditation_status.replaceAll('_', ' ')}, basis: {item.accreditation_basis?.replaceAll('_', ' ') ?? '—'}
        </Field>
        <Field label="Verified">{item.verified ? 'yes' : 'no'}</Field>
        <Field label="Expires">{formatDate(item.expires_at)}</Field>
        <Field label="Last reason">{item.review_reason ?? '—'}</Field>
        <Field label="User">{item.user_id}</Field>
      </dl>
      <section aria-labelledby="documents-title">
        <h3 id="documents-title">Documents</h3>
        <ul className="documents">
          {item.documents.map((document) => (
            <li key={document.id}>
              {document.file_name} ({document.document_type.replaceAll('_', ' ')}, {document.content_type}){' '}
              <button type="button" onClick={() => download.mutate(document)}>
                View {document.file_name}
              </button>
            </li>
          ))}
          {item.documents.length === 0 ? <li>No documents uploaded.</li> : null}
        </ul>
        <ErrorNote error={download.error} />
        {viewing ? (
          <p className="viewer">
            <a href={viewing.url} target="_blank" rel="noopener noreferrer" data-testid="document-link">
              Open {viewing.name}
            </a>{' '}
            (a short-lived link, valid until {formatDate(viewing.expires)})
          </p>
        ) : null}
      </section>
      <div className="actions">
        <button
          type="button"
          disabled={decided || item.review_status === 'under_review' || act.isPending}
          onClick={() => act.mutate({ action: 'start-review' })}
        >
          Start review
        </button>
        <ReasonAction
          label="Request more information"
          reasonLabel="Message to the investor"
          disabled={decided || act.isPending}
          onSubmit={(reason) => act.mutate({ action: 'request-info', reason })}
        />
        <button type="button" disabled={decided || act.isPending} onClick={() => act.mutate({ action: 'approve' })}>
          Approve
        </button>
        <ReasonAction
          label="Deny"
          reasonLabel="Reason for denying"
          danger
          disabled={decided || act.isPending}
          onSubmit={(reason) => act.mutate({ action: 'deny', reason })}
        />
      </div>
      <ErrorNote error={act.error} />
      <Timeline
        entries={[
          ['Created', item.created_at],
          ['Submitted for review', item.submitted_at],
          [`Reviewed: ${item.review_status.replaceAll('_', ' ')}`, item.reviewed_at],
        ]}
      />
    </article>
  );
}

export function SubscriptionQueue() {
  const { id, selected, queue } = useQueue('subscriptions', 'pending_review', listSubscriptions, (item) => item.id);
  return (
    <div className="split">
      <Queue
        {...queue}
        title="Subscriptions"
        statuses={SUBSCRIPTION_STATUSES}
        hrefOf={(item) => `/subscriptions/${item.id}`}
        columns={[
          { label: 'Subscription', render: (item) => item.id.slice(0, 8) },
          { label: 'Units', render: (item) => item.units_subscribed },
          { label: 'Amount', render: (item) => `${item.amount} ${item.currency}` },
          { label: 'Status', render: (item) => <Badge value={item.status} /> },
        ]}
      />
      {id ? <SubscriptionCase id={id} initial={selected} /> : <p className="hint">Open a case to review it.</p>}
    </div>
  );
}

function SubscriptionCase({ id, initial }: { id: string; initial: Subscription | undefined }) {
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const [result, setResult] = useState<Subscription | undefined>();
  const decide = useMutation({
    mutationFn: ({ decision, reason }: { decision: 'approve' | 'reject'; reason?: string }) =>
      decision === 'approve'
        ? unwrap(api.POST('/admin/subscriptions/{id}/approve', { params: { path: { id } } }))
        : unwrap(api.POST('/admin/subscriptions/{id}/reject', { params: { path: { id } }, body: { reason: reason ?? '' } })),
    onSuccess: async (data) => {
      setResult(data);
      await client.invalidateQueries({ queryKey: ['subscriptions'] });
      await client.invalidateQueries({ queryKey: ['ledger'] });
    },
  });
  const timeline = useQuery({
    queryKey: ['subscription-timeline', id, result?.status],
    queryFn: () => unwrap(api.GET('/admin/subscriptions/{id}/timeline', { params: { path: { id } } })),
  });
  const item = result?.id === id ? result : initial;
  if (!item) return <p className="hint">This case is not in the list shown; change the status filter.</p>;
  const open = item.status === 'pending_review';
  return (
    <article className="case" aria-labelledby="case-title">
      <h2 id="case-title">Subscription {item.id.slice(0, 8)}</h2>
      <dl>
        <Field label="Status">
          <Badge value={item.status} />
        </Field>
        <Field label="Offering">{item.offering_id}</Field>
        <Field label="Investor">{item.user_id}</Field>
        <Field label="Units">{item.units_subscribed}</Field>
        <Field label="Amount">
          {item.amount} {item.currency}
        </Field>
        <Field label="Payment">
          {item.payment_method} · {item.payment_status ? <Badge value={item.payment_status} /> : '—'}
        </Field>
        <Field label="Accreditation claimed">{item.accreditation_status ?? '—'}</Field>
      </dl>
      <div className="actions">
        <button type="button" disabled={!open || decide.isPending} onClick={() => decide.mutate({ decision: 'approve' })}>
          Approve and issue shares
        </button>
        <ReasonAction
          label="Reject"
          reasonLabel="Reason for rejecting (the payment is refunded)"
          danger
          disabled={!open || decide.isPending}
          onSubmit={(reason) => decide.mutate({ decision: 'reject', reason })}
        />
        {item.status === 'completed' ? (
          <button type="button" onClick={() => navigate(`/ledger?offering=${item.offering_id}`)}>
            See the holding in the ledger
          </button>
        ) : null}
      </div>
      <ErrorNote error={decide.error} />
      <section aria-labelledby="timeline-title">
        <h3 id="timeline-title">Timeline</h3>
        <ErrorNote error={timeline.error} />
        <ol className="timeline">
          {(timeline.data?.items ?? []).map((entry) => (
            <li key={`${entry.created_at}-${entry.to_status}`}>
              <time dateTime={entry.created_at}>{formatDate(entry.created_at)}</time>{' '}
              {entry.from_status ? `${entry.from_status.replaceAll('_', ' ')} → ` : ''}
              <strong>{entry.to_status.replaceAll('_', ' ')}</strong> by <code>{entry.actor}</code>
              {entry.reason ? `: ${entry.reason}` : ''}
            </li>
          ))}
        </ol>
      </section>
    </article>
  );
}
