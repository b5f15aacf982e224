import { useInfiniteQuery, type QueryKey } from '@tanstack/react-query';
import { useState, type ReactNode } from 'react';

/** Shared bits: status badges, dates, money, errors, a labelled reason form. */
export const formatDate = (value: string | null | undefined) =>
  value ? new Date(value).toLocaleString('en-US', { timeZone: 'UTC' }) + ' UTC' : '—';

/** A list's count for a heading: its `total`, with a `+` when the API stopped counting there (`total_capped`); `…` while loading. */
export const formatTotal = (meta: { total: number; total_capped: boolean } | undefined) =>
  meta ? `${meta.total.toLocaleString('en-US')}${meta.total_capped ? '+' : ''}` : '…';

export function Badge({ value }: { value: string }) {
  return <span className={`badge badge-${value}`}>{value.replaceAll('_', ' ')}</span>;
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p role="alert" className="error">
      {error instanceof Error ? error.message : 'Something went wrong'}
    </p>
  );
}

export function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="field">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

/** A button that asks for a reason (or message) before it acts. */
export function ReasonAction(props: {
  label: string;
  reasonLabel: string;
  danger?: boolean;
  disabled?: boolean;
  onSubmit: (reason: string) => void;
}) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const id = `reason-${props.label.replace(/\W+/g, '-').toLowerCase()}`;
  if (!open)
    return (
      <button type="button" className={props.danger ? 'danger' : ''} disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}…
      </button>
    );
  return (
    <form
      className="reason"
      onSubmit={(event) => {
        event.preventDefault();
        props.onSubmit(reason);
        setOpen(false);
        setReason('');
      }}
    >
      <label htmlFor={id}>{props.reasonLabel}</label>
      <textarea id={id} required value={reason} onChange={(event) => setReason(event.target.value)} rows={3} />
      <div className="actions">
        <button type="submit" className={props.danger ? 'danger' : ''} disabled={props.disabled}>
          {props.label}
        </button>
        <button type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function StatusFilter<T extends string>(props: {
  label: string;
  value: T | '';
  options: readonly T[];
  onChange: (value: T | '') => void;
  allowAll?: boolean;
}) {
  const id = `filter-${props.label.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <div className="filter">
      <label htmlFor={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={(event) => props.onChange(event.target.value as T | '')}>
        {props.allowAll ? <option value="">all</option> : null}
        {props.options.map((option) => (
          <option key={option} value={option}>
            {option.replaceAll('_', ' ')}
          </option>
        ))}
      </select>
    </div>
  );
}

/** What every list answers: its items, and a meta with the capped total and where the next page starts. */
type ListPage<T> = {
  items: T[];
  meta: {
    total: number;
    total_capped: boolean;
    has_next_page?: boolean;
    next_cursor?: string | null;
    offset?: number;
    page?: number | null;
    limit: number;
  };
};

/** Where the page after `page` starts: its `next_cursor` where the list has cursors, else the next offset or page number. */
function nextPageOf(page: ListPage<unknown>): string | number | undefined {
  const { meta } = page;
  if (meta.next_cursor !== undefined) return meta.next_cursor ?? undefined;
  if (!meta.has_next_page) return undefined;
  if (typeof meta.page === 'number') return meta.page + 1;
  return (meta.offset ?? 0) + meta.limit;
}

/**
 * A list read a page at a time, the next on `loadMore` (react-query's infinite query):
 * `fetchPage(next)` reads the first page when `next` is undefined, else the page at `next`
 * (a cursor string, an offset or a page number, as the list's meta says: see `nextPageOf`).
 * `data` is the items of every page read so far, with the first page's meta (its total).
 */
export function usePagedList<T>(options: {
  queryKey: QueryKey;
  fetchPage: (next: string | number | undefined) => Promise<ListPage<T>>;
  enabled?: boolean;
}) {
  const query = useInfiniteQuery({
    queryKey: options.queryKey,
    queryFn: ({ pageParam }) => options.fetchPage(pageParam),
    initialPageParam: undefined as string | number | undefined,
    getNextPageParam: (last) => nextPageOf(last),
    enabled: options.enabled,
  });
  const pages = query.data?.pages;
  return {
    data: pages ? { items: pages.flatMap((page) => page.items), meta: pages[0]!.meta } : undefined,
    error: query.error,
    hasMore: query.hasNextPage,
    loadingMore: query.isFetchingNextPage,
    loadMore: () => void query.fetchNextPage(),
  };
}

/** Under a list: how many of its items are shown, and a button that reads the next page while there is one. */
export function MoreRows({ list, label = 'items' }: { list: ReturnType<typeof usePagedList<unknown>>; label?: string }) {
  if (!list.data) return null;
  const shown = list.data.items.length;
  return (
    <p className="more-rows">
      Showing {shown.toLocaleString('en-US')} of {formatTotal(list.data.meta)} {label}
      {list.hasMore ? (
        <>
          {' '}
          <button type="button" onClick={list.loadMore} disabled={list.loadingMore}>
            {list.loadingMore ? 'Loading…' : 'Load more'}
          </button>
        </>
      ) : null}
    </p>
  );
}
