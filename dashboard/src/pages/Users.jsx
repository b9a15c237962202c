// Users of the node (whatever face created them): usage against limit, expiry, and the
// native API's actions on them.  The list refreshes every two seconds.
import { useEffect, useState } from 'preact/hooks';
import { api, fmtBytes } from '../api.js';
import { UserDetail } from './UserDetail.jsx';

const GB = 1e9;

function UserForm({ user, onDone, onCancel }) {
  const editing = !!user;
  const [id, setId] = useState(user ? user.id : '');
  const [secret, setSecret] = useState(user ? user.auth_secret : '');
  const [limit, setLimit] = useState(user && user.traffic_limit ? String(user.traffic_limit / GB) : '');
  const [expiry, setExpiry] = useState(user && user.expiry ? user.expiry.slice(0, 10) : '');
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    const limitNum = limit.trim() === '' ? 0 : Number(limit);
    if (!Number.isFinite(limitNum) || limitNum < 0) { setError('The limit must be a number of GB, 0 or more.'); return; }
    const body = { auth_secret: secret, traffic_limit: Math.round(limitNum * GB), expiry: expiry ? `${expiry}T00:00:00Z` : null };
    try {
      if (editing) await api('PATCH', `/api/v1/users/${encodeURIComponent(user.id)}`, body);
      else await api('POST', '/api/v1/users', { id, ...body });
      onDone();
    } catch (err) { setError(err.message); }
  }
  return (
    <form class="panel" onSubmit={submit} aria-label={editing ? `Edit ${user.id}` : 'New user'}>
      <h2>{editing ? `Edit ${user.id}` : 'New user'}</h2>
      {!editing && <><label for="u-id">User id</label><input id="u-id" required value={id} onInput={(e) => setId(e.currentTarget.value)} /></>}
      <label for="u-secret">Password (auth secret)</label>
      <input id="u-secret" required value={secret} onInput={(e) => setSecret(e.currentTarget.value)} />
      <label for="u-limit">Traffic limit in GB (empty or 0: none)</label>
      <input id="u-limit" inputmode="decimal" value={limit} onInput={(e) => setLimit(e.currentTarget.value)} />
      <label for="u-expiry">Expires on (empty: never)</label>
      <input id="u-expiry" type="date" value={expiry} onInput={(e) => setExpiry(e.currentTarget.value)} />
      {error && <p role="alert" class="error">{error}</p>}
      <div class="row"><button type="submit">{editing ? 'Save' : 'Create user'}</button><button type="button" class="ghost" onClick={onCancel}>Cancel</button></div>
    </form>
  );
}

function Usage({ u }) {
  if (!u.traffic_limit) return <span data-usage={u.used}>{fmtBytes(u.used)}</span>;
  const pct = Math.min(100, (100 * u.used) / u.traffic_limit);
  return (
    <span data-usage={u.used}>
      {fmtBytes(u.used)} of {fmtBytes(u.traffic_limit)}
      <progress max="100" value={pct} aria-label={`${u.id} usage ${pct.toFixed(0)} percent`} />
    </span>
  );
}

export function Users() {
  const [users, setUsers] = useState([]);
  const [q, setQ] = useState('');
  const [form, setForm] = useState(null);   // null | 'new' | user
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const [detail, setDetail] = useState(null);

  async function load() {
    try { setUsers((await api('GET', '/api/v1/users')).users); setError(null); } catch (err) { setError(err.message); }
  }
  useEffect(() => { load(); const t = setInterval(load, 2000); return () => clearInterval(t); }, []);

  async function act(label, method, path, body) {
    try { const r = await api(method, path, body); setNotice(`${label}: done${r && r.closed !== undefined ? ` (${r.closed} closed)` : ''}`); load(); } catch (err) { setError(err.message); }
  }

  const shown = users.filter((u) => u.id.toLowerCase().includes(q.toLowerCase()));
  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      <div class="row">
        <label for="search" class="sr-only">Search users</label>
        <input id="search" type="search" placeholder="Search users" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        <button type="button" onClick={() => setForm('new')}>New user</button>
      </div>
      {form && <UserForm user={form === 'new' ? null : form} onCancel={() => setForm(null)} onDone={() => { setForm(null); load(); }} />}
      {detail && <UserDetail id={detail} onClose={() => setDetail(null)} />}
      {error && <p role="alert" class="error">{error}</p>}
      <p role="status" class="status">{notice}</p>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Users, {shown.length} shown of {users.length}</caption>
          <thead><tr><th scope="col">User</th><th scope="col">State</th><th scope="col">Used</th><th scope="col">Online</th><th scope="col">Expires</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {shown.map((u) => {
              const path = `/api/v1/users/${encodeURIComponent(u.id)}`;
              return (
                <tr key={u.id} data-user={u.id}>
                  <th scope="row">{u.id}<small>{u.source}</small></th>
                  <td>{u.enabled ? (u.refused ? `refused: ${u.refused}` : 'enabled') : 'disabled'}</td>
                  <td><Usage u={u} /></td>
                  <td data-online={u.online}>{u.online}</td>
                  <td>{u.expiry ? u.expiry.slice(0, 10) : 'never'}</td>
                  <td><div class="actions">
                    <button type="button" onClick={() => setDetail(u.id)} aria-label={`Details of ${u.id}`}>Details</button>
                    <button type="button" onClick={() => setForm(u)} aria-label={`Edit ${u.id}`}>Edit</button>
                    <button type="button" onClick={() => act(u.enabled ? 'Disable' : 'Enable', 'PATCH', path, { enabled: !u.enabled })} aria-label={`${u.enabled ? 'Disable' : 'Enable'} ${u.id}`}>{u.enabled ? 'Disable' : 'Enable'}</button>
                    <button type="button" onClick={() => act('Reset', 'POST', `${path}/reset`)} aria-label={`Reset traffic of ${u.id}`}>Reset</button>
                    <button type="button" onClick={() => act('Kick', 'POST', `${path}/kick`)} aria-label={`Kick ${u.id}`}>Kick</button>
                    <button type="button" class="danger" onClick={() => confirm(`Delete ${u.id}?`) && act('Delete', 'DELETE', path)} aria-label={`Delete ${u.id}`}>Delete</button>
                  </div></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
