// Live Hysteria 2 connections (the native /api/v1/connections route): who, from where, since
// when, how much; kick a user's every connection from here.
import { useEffect, useState } from 'preact/hooks';
import { api, fmtBytes } from '../api.js';

export function Sessions() {
  const [rows, setRows] = useState([]);
  const [total, setTotal] = useState(0);
  const [q, setQ] = useState('');
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');

  async function load() {
    try {
      const r = await api('GET', '/api/v1/connections?limit=1000');
      setRows(r.connections); setTotal(r.total); setError(null);
    } catch (err) { setError(err.message); }
  }
  useEffect(() => { load(); const t = setInterval(load, 2000); return () => clearInterval(t); }, []);

  async function kick(user) {
    try { const r = await api('POST', `/api/v1/users/${encodeURIComponent(user)}/kick`); setNotice(`Kick ${user}: ${r.closed} closed`); load(); } catch (err) { setError(err.message); }
  }

  const shown = rows.filter((c) => c.user.toLowerCase().includes(q.toLowerCase()) || c.remote.includes(q));
  return (
    <section aria-labelledby="sessions-title">
      <h1 id="sessions-title">Sessions</h1>
      <div class="row">
        <label for="s-search" class="sr-only">Filter by user or address</label>
        <input id="s-search" type="search" placeholder="Filter by user or address" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      </div>
      {error && <p role="alert" class="error">{error}</p>}
      <p role="status" class="status">{notice || `${total} live connection${total === 1 ? '' : 's'}${total > rows.length ? ` (first ${rows.length} shown)` : ''}`}</p>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Live connections</caption>
          <thead><tr><th scope="col">User</th><th scope="col">From</th><th scope="col">Since</th><th scope="col">Sent</th><th scope="col">Received</th><th scope="col">Worker</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {shown.map((c) => (
              <tr key={`${c.worker}-${c.connection}`} data-connection-user={c.user}>
                <th scope="row">{c.user}</th>
                <td>{c.remote}</td>
                <td><time datetime={c.since}>{c.since.replace('T', ' ').slice(0, 19)}</time></td>
                <td>{fmtBytes(c.tx)}</td>
                <td>{fmtBytes(c.rx)}</td>
                <td>{c.worker}</td>
                <td><div class="actions"><button type="button" onClick={() => kick(c.user)} aria-label={`Kick ${c.user} (every connection)`}>Kick user</button></div></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
