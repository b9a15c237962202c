// Relayed streams (the m3u-proxy face's API): state, current URL, failovers, viewers, bytes;
// create, trigger a failover, delete, list and disconnect viewers; a live preview in the page (hls.js for HLS, the node's
// own relay URL for a TS stream, which Chromium plays only where it can decode it).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, fmtBytes } from '../api.js';

function Preview({ stream, onClose }) {
  const video = useRef(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let hls = null;
    let stopped = false;
    (async () => {
      try {
        const created = await api('POST', '/streams', { url: stream.original_url });
        const url = created.viewer_url || created.playlist_url;   // absolute, on the media port
        if (stopped) return;
        if (/hls/i.test(stream.stream_type || '') || /\.m3u8(\?|$)/.test(url)) {
          const { default: Hls } = await import('hls.js/light');
          if (Hls.isSupported()) {
            hls = new Hls();
            hls.on(Hls.Events.ERROR, (_, d) => d.fatal && setError(`preview: ${d.details}`));
            hls.loadSource(url);
            hls.attachMedia(video.current);
          } else video.current.src = url;
        } else {
          video.current.src = url;
        }
      } catch (err) { setError(err.message); }
    })();
    return () => { stopped = true; if (hls) hls.destroy(); };
  }, [stream.stream_id]);
  return (
    <div class="panel" aria-label={`Preview of ${stream.stream_id}`}>
      <h2>Preview {stream.stream_id}</h2>
      <video ref={video} controls muted autoplay playsinline width="480" />
      {error && <p role="alert" class="error">{error}</p>}
      <button type="button" class="ghost" onClick={onClose}>Close preview</button>
    </div>
  );
}

// A stream's viewers (GET /streams/{id}: its connected clients), each with a disconnect.
function Viewers({ stream, onClose }) {
  const [clients, setClients] = useState([]);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const sid = encodeURIComponent(stream.stream_id);
  async function load() {
    try { setClients((await api('GET', `/streams/${sid}`)).clients); setError(null); } catch (err) { setError(err.message); }
  }
  useEffect(() => { load(); const t = setInterval(load, 2000); return () => clearInterval(t); }, [stream.stream_id]);
  async function drop(c) {
    try {
      const r = await api('DELETE', `/hls/${sid}/clients/${encodeURIComponent(c.client_id)}`);
      setNotice(`Disconnect ${c.client_id}: ${r.closed} closed`);
      load();
    } catch (err) { setError(err.message); }
  }
  return (
    <section class="panel" aria-label={`Viewers of ${stream.stream_id}`} data-viewers-of={stream.stream_id}>
      <h2>Viewers of {stream.stream_id}</h2>
      {error && <p role="alert" class="error">{error}</p>}
      <p role="status" class="status">{notice}</p>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Viewers of {stream.stream_id}, {clients.length}</caption>
          <thead><tr><th scope="col">Viewer</th><th scope="col">Address</th><th scope="col">Player</th><th scope="col">Served</th><th scope="col">Since</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {clients.map((c) => (
              <tr key={c.client_id} data-viewer={c.client_id}>
                <th scope="row">{c.client_id}</th><td>{c.ip_address}</td><td>{c.user_agent}</td>
                <td>{fmtBytes(c.bytes_served)}</td><td>{c.created_at}</td>
                <td><button type="button" class="danger" onClick={() => drop(c)} aria-label={`Disconnect ${c.client_id}`}>Disconnect</button></td>
              </tr>
            ))}
            {!clients.length && <tr><td colSpan={6}>No viewer right now.</td></tr>}
          </tbody>
        </table>
      </div>
      <button type="button" class="ghost" onClick={onClose}>Close viewers</button>
    </section>
  );
}

export function Streams() {
  const [streams, setStreams] = useState([]);
  const [url, setUrl] = useState('');
  const [failovers, setFailovers] = useState('');
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const [preview, setPreview] = useState(null);
  const [viewersOf, setViewersOf] = useState(null);

  async function load() {
    try { setStreams((await api('GET', '/streams')).streams); setError(null); } catch (err) { setError(err.message); }
  }
  useEffect(() => { load(); const t = setInterval(load, 2000); return () => clearInterval(t); }, []);

  async function act(label, method, path, body) {
    try { const r = await api(method, path, body); setNotice(`${label}: ${r.message || 'done'}`); load(); } catch (err) { setError(err.message); }
  }
  function create(e) {
    e.preventDefault();
    const fo = failovers.split(/\s+/).filter(Boolean);
    act('Create', 'POST', '/streams', { url, ...(fo.length ? { failover_urls: fo } : {}) }).then(() => { setUrl(''); setFailovers(''); });
  }

  return (
    <section aria-labelledby="streams-title">
      <h1 id="streams-title">Streams</h1>
      <form class="panel" onSubmit={create} aria-label="New stream">
        <label for="s-url">Origin URL</label>
        <input id="s-url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        <label for="s-fo">Failover URLs (space separated)</label>
        <input id="s-fo" value={failovers} onInput={(e) => setFailovers(e.currentTarget.value)} />
        <button type="submit">Create stream</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      <p role="status" class="status">{notice}</p>
      {preview && <Preview stream={preview} onClose={() => setPreview(null)} />}
      {viewersOf && <Viewers stream={viewersOf} onClose={() => setViewersOf(null)} />}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Streams</caption>
          <thead><tr><th scope="col">Stream</th><th scope="col">State</th><th scope="col">Current URL</th><th scope="col">Failovers</th><th scope="col">Viewers</th><th scope="col">Served</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {streams.map((s) => (
              <tr key={s.stream_id} data-stream={s.stream_id}>
                <th scope="row">{s.stream_id}<small>{s.stream_type}</small></th>
                <td>{s.is_active ? 'active' : 'idle'}</td>
                <td class="url" data-current-url={s.current_url}>{s.current_url}</td>
                <td>{s.failover_attempts}</td>
                <td data-viewers={s.client_count}>{s.client_count}</td>
                <td>{fmtBytes(s.total_bytes_served)}</td>
                <td><div class="actions">
                  <button type="button" onClick={() => setPreview(s)} aria-label={`Preview ${s.stream_id}`}>Preview</button>
                  <button type="button" onClick={() => setViewersOf(s)} aria-label={`Viewers of ${s.stream_id}`}>Viewers</button>
                  <button type="button" disabled={!s.has_failover} onClick={() => act('Failover', 'POST', `/streams/${encodeURIComponent(s.stream_id)}/failover`)} aria-label={`Fail over ${s.stream_id}`}>Failover</button>
                  <button type="button" class="danger" onClick={() => act('Delete', 'DELETE', `/streams/${encodeURIComponent(s.stream_id)}`)} aria-label={`Delete ${s.stream_id}`}>Delete</button>
                </div></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
