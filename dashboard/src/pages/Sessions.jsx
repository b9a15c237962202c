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

  // Devices: a user's connections from one address (a phone reconnecting after a network
  // change shows as one device with several connections), as HY2 SCALE's sessions group them.
  const devices = {};
  rows.forEach((c) => {
    const ip = (/^\[(.*)\]:\d+$/.exec(c.remote) || /^(.*):\d+$/.exec(c.remote) || [null, c.remote])[1];
    const key = `${c.user} ${ip}`;
    const d = (devices[key] = devices[key] || { user: c.user, ip, n: 0, tx: 0, rx: 0 });
    d.n += 1; d.tx += c.tx; d.rx += c.rx;
  });
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
      <h2>Devices</h2>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Devices: a user's connections from one address</caption>
          <thead><tr><th scope="col">User</th><th scope="col">Address</th><th scope="col">Connections</th><th scope="col">Sent</th><th scope="col">Received</th></tr></thead>
          <tbody>
            {Object.values(devices).map((d) => (
              <tr key={`${d.user} ${d.ip}`} data-device-user={d.user} data-device-ip={d.ip}>
                <th scope="row">{d.user}</th><td>{d.ip}</td><td>{d.n}</td><td>{fmtBytes(d.tx)}</td><td>{fmtBytes(d.rx)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Connections</h2>
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
