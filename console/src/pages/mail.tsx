import { useState } from 'react';
import { api, unwrap } from '../api.ts';
import { ErrorNote, formatDate, formatTotal, MoreRows, usePagedList } from '../ui.tsx';

/** The development mail outbox (SMTP_URL unset): platform staff only. */
export function Mail() {
  const [to, setTo] = useState('');
  const valid = to === '' || /^[^@\s]+@[^@\s]+$/.test(to);
  const list = usePagedList({
    queryKey: ['mail', to],
    fetchPage: (next) =>
      unwrap(api.GET('/admin/mail', { params: { query: { limit: 50, offset: Number(next ?? 0), ...(to ? { to } : {}) } } })),
    enabled: valid,
  });
  return (
    <section aria-labelledby="mail-title">
      <h2 id="mail-title">
        Dev mail outbox <span className="count">{formatTotal(list.data?.meta)}</span>
      </h2>
      <div className="toolbar">
        <div className="filter">
          <label htmlFor="to">Recipient</label>
          <input id="to" type="email" value={to} onChange={(event) => setTo(event.target.value.trim())} />
        </div>
      </div>
      <ErrorNote error={list.error} />
      <ul className="mail">
        {(list.data?.items ?? []).map((mail) => (
          <li key={mail.id}>
            <strong>{mail.subject}</strong> to {mail.recipient}, {formatDate(mail.created_at)}
            <pre>{mail.body}</pre>
          </li>
        ))}
      </ul>
      <MoreRows list={list} label="messages" />
    </section>
  );
}
