// The node itself: identity, listeners, counter segment, processes (GET /api/v1/node).
// Read-only here: the node's config file is the one source of its settings.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';

function fmtUptime(s) {
  if (s == null) return '–';
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return `${d ? `${d} d ` : ''}${h} h ${m} min`;
}

export function Settings() {
  const [node, setNode] = useState(null);
  const [error, setError] = useState(null);
  async function load() {
    try { setNode(await api('GET', '/api/v1/node')); setError(null); } catch (err) { setError(err.message); }
  }
  useEffect(() => { load(); const t = setInterval(load, 5000); return () => clearInterval(t); }, []);
  return (
    <section aria-labelledby="settings-title">
      <h1 id="settings-title">Settings</h1>
      {error && <p role="alert" class="error">{error}</p>}
      {node && (
        <>
          <dl class="cards">
            <div class="card"><dt>Name</dt><dd>{node.name}</dd></div>
            <div class="card"><dt>Version</dt><dd>{node.version}</dd></div>
            <div class="card"><dt>Uptime</dt><dd>{fmtUptime(node.uptime)}</dd></div>
            <div class="card"><dt>Control API</dt><dd>{node.control.listen}</dd></div>
            <div class="card"><dt>Counter shards</dt><dd>{node.counters.shards} × {node.counters.slots_per_shard}</dd></div>
          </dl>
          <p class="hint">Data directory {node.data_dir}; settings are read from the node's config file (restart, or the faces' own APIs, to change them).</p>
          <h2>Processes</h2>
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Processes of the node</caption>
              <thead><tr><th scope="col">Process</th><th scope="col">PID</th><th scope="col">Alive</th><th scope="col">Restarts</th></tr></thead>
              <tbody>
                {node.children.map((c) => (
                  <tr key={c.name}><th scope="row">{c.name}</th><td>{c.pid}</td><td>{c.alive ? 'yes' : 'no'}</td><td>{c.restarts || 0}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
