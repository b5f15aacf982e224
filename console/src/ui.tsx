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
