// One user up close: its rate each second (from the user's monotonic tx/rx totals), its live
// connections and the devices they come from (one per remote address), with kick.
import { useEffect, useState } from 'preact/hooks';
import { api, fmtBytes } from '../api.js';
import { RateChart } from '../chart.jsx';

const KEEP = 300;

function host(remote) {
  // "1.2.3.4:5678" or "[::1]:5678" → the address without the port.
  const m = /^\[(.*)\]:\d+$/.exec(remote) || /^(.*):\d+$/.exec(remote);
  return m ? m[1] : remote;
}

export function UserDetail({ id, onClose }) {
  const [hist, setHist] = useState({ t: [], tx: [], rx: [] });
  const [conns, setConns] = useState([]);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const path = `/api/v1/users/${encodeURIComponent(id)}`;

  useEffect(() => {
    let prev = null;
    let stopped = false;
    async function tick() {
      try {
        const [u, c] = await Promise.all([api('GET', path), api('GET', `/api/v1/connections?user=${encodeURIComponent(id)}&limit=1000`)]);
        if (stopped) return;
        const now = Date.now() / 1000;
        if (prev) {
          const dt = Math.max(0.001, now - prev.t);
          const cut = (a, v) => [...a.slice(-(KEEP - 1)), v];
          // Totals only grow; a smaller one (a replaced counter segment) is a zero, not a dip.
          const tx = Math.max(0, u.tx - prev.tx) / dt, rx = Math.max(0, u.rx - prev.rx) / dt;
          setHist((h) => ({ t: cut(h.t, now), tx: cut(h.tx, tx), rx: cut(h.rx, rx) }));
        }
        prev = { t: now, tx: u.tx, rx: u.rx };
        setConns(c.connections);
        setError(null);
      } catch (err) { if (!stopped) setError(err.message); }
    }
    tick();
    const t = setInterval(tick, 1000);
    return () => { stopped = true; clearInterval(t); };
  }, [id]);

  async function kick() {
    try { const r = await api('POST', `${path}/kick`); setNotice(`Kick: ${r.closed} closed`); } catch (err) { setError(err.message); }
  }

  const devices = {};
  conns.forEach((c) => {
    const d = (devices[host(c.remote)] = devices[host(c.remote)] || { n: 0, tx: 0, rx: 0 });
    d.n += 1; d.tx += c.tx; d.rx += c.rx;
  });
  return (
    <section class="panel detail" aria-labelledby="detail-title" data-detail={id}>
      <div class="row">
        <h2 id="detail-title">{id}</h2>
        <button type="button" onClick={kick} aria-label={`Kick every connection of ${id}`}>Kick all</button>
        <button type="button" class="ghost" onClick={onClose}>Close</button>
      </div>
      {error && <p role="alert" class="error">{error}</p>}
      <p role="status" class="status">{notice}</p>
      <RateChart label={`Rate of ${id}`} series={['to the user', 'from the user']} data={[hist.t, hist.tx, hist.rx]} height={160} />
      <h3>Devices</h3>
      <ul data-devices={Object.keys(devices).length}>
        {Object.entries(devices).map(([addr, d]) => (
          <li key={addr} data-device={addr}>{addr}: {d.n} connection{d.n === 1 ? '' : 's'}, {fmtBytes(d.tx)} to, {fmtBytes(d.rx)} from</li>
        ))}
        {!conns.length && <li>No live connection.</li>}
      </ul>
      <h3>Connections</h3>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Live connections of {id}</caption>
          <thead><tr><th scope="col">From</th><th scope="col">Since</th><th scope="col">To user</th><th scope="col">From user</th></tr></thead>
          <tbody>
            {conns.map((c) => (
              <tr key={`${c.worker}-${c.connection}`} data-detail-connection={c.remote}>
                <td>{c.remote}</td><td>{c.since}</td><td>{fmtBytes(c.tx)}</td><td>{fmtBytes(c.rx)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
