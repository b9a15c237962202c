// The node itself: identity, counter segment, processes (GET /api/v1/node), and its config
// (GET /api/v1/config, credentials hidden) with what a reload applies at once and what waits
// for a restart.  The config file stays the one source of the settings: edit it, then reload
// from here (POST /api/v1/reload, as SIGHUP) and read whether the node took it.
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
  const [config, setConfig] = useState(null);
  const [notice, setNotice] = useState('');
  async function loadConfig() {
    try { setConfig(await api('GET', '/api/v1/config')); } catch (err) { setError(err.message); }
  }
  useEffect(() => { loadConfig(); }, []);
  async function reload() {
    setNotice('Reloading…');
    try {
      await api('POST', '/api/v1/reload');
      setNotice('Reloaded: the node took the config file.');
      setError(null);
      loadConfig();
    } catch (err) { setNotice(''); setError(`Reload refused, the running config kept: ${err.message}`); }
  }
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
          <p class="hint">Data directory {node.data_dir}; settings are read from the node's config file: edit it, then reload.</p>
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
      <h2>Config</h2>
      <div class="row"><button type="button" onClick={reload}>Reload the config file</button></div>
      <p role="status" class="status">{notice}</p>
      {config && (
        <>
          <div class="cards">
            <div class="card"><h3>Applied by a reload</h3><ul data-live>{config.live.map((x) => <li key={x}>{x}</li>)}</ul></div>
            <div class="card"><h3>Applied at the next start</h3><ul>{config.at_restart.map((x) => <li key={x}>{x}</li>)}</ul></div>
          </div>
          <pre class="config" data-config tabIndex="0" aria-label="The node's config, credentials hidden">{JSON.stringify(config.config, null, 2)}</pre>
        </>
      )}
    </section>
  );
}
