import { useState } from 'react';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, formatDate, formatTotal, MoreRows, usePagedList } from '../ui.tsx';

const STATUSES = ['kept', 'pending', 'sent', 'failed'] as const;
type MailStatus = (typeof STATUSES)[number];

/**
 * The mail outbox: every mail queued, kept (SMTP_URL unset) or sent over SMTP, with its attempts
 * and why the last one failed. Platform staff only.
 */
export function Mail() {
  const [to, setTo] = useState('');
  const [status, setStatus] = useState<MailStatus | ''>('');
  const valid = to === '' || /^[^@\s]+@[^@\s]+$/.test(to);
  const list = usePagedList({
    queryKey: ['mail', to, status],
    fetchPage: (next) =>
      unwrap(
        api.GET('/admin/mail', {
          params: { query: { limit: 50, offset: Number(next ?? 0), ...(to ? { to } : {}), ...(status ? { status } : {}) } },
        }),
      ),
    enabled: valid,
  });
  return (
    <section aria-labelledby="mail-title">
      <h2 id="mail-title">
        Mail outbox <span className="count">{formatTotal(list.data?.meta)}</span>
      </h2>
      <div className="toolbar">
        <div className="filter">
          <label htmlFor="to">Recipient</label>
          <input id="to" type="email" value={to} onChange={(event) => setTo(event.target.value.trim())} />
        </div>
        <div className="filter">
          <label htmlFor="mail-status">Status</label>
          <select id="mail-status" value={status} onChange={(event) => setStatus(event.target.value as MailStatus | '')}>
            <option value="">any</option>
            {STATUSES.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
        </div>
      </div>
      <ErrorNote error={list.error} />
      <ul className="mail">
        {(list.data?.items ?? []).map((mail) => (
          <li key={mail.id}>
            <strong>{mail.subject ?? '(unreadable: sealed under a key this server does not have)'}</strong> to {mail.recipient ?? '—'},{' '}
            {formatDate(mail.created_at)} <Badge value={mail.status} />
            {mail.status !== 'kept' && (
              <span className="muted">
                {' '}
                {mail.attempts} attempt{mail.attempts === 1 ? '' : 's'}
                {mail.sent_at ? `, sent ${formatDate(mail.sent_at)}` : ''}
                {mail.next_attempt_at ? `, next attempt ${formatDate(mail.next_attempt_at)}` : ''}
                {mail.last_error ? `, last error ${mail.last_error}` : ''}
              </span>
            )}
            {mail.body !== null && <pre>{mail.body}</pre>}
          </li>
        ))}
      </ul>
      <MoreRows list={list} label="messages" />
    </section>
  );
}
