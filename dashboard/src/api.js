// The dashboard's calls to the node's control API: the control token from sessionStorage, sent
// as a Bearer token (X-API-Token for the stream face, which uses m3u-proxy's header).

import { sha256 } from 'js-sha256';

const KEY = 'fastpath.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

// The API lives at the server's root whatever mount served the page (/, /dashboard/, /scale/).
const root = '';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra) {
  const t = token.get();
  const h = { Accept: 'application/json', ...extra };
  if (t) {
    h.Authorization = `Bearer ${t}`;
    h['X-API-Token'] = t;
  }
  return h;
}

export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(root + path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const msg = (data && (data.message || data.description || data.detail || data.title || data.error)) || resp.statusText;
    throw new ApiError(resp.status, typeof msg === 'string' ? msg : JSON.stringify(msg));
  }
  return data;
}

// Server-sent events over fetch: EventSource cannot send an Authorization header, and the
// token must not go into a URL (logs, history).  The parser handles the "data:" lines this
// node sends (one JSON document per event) and comments (pings).
export function liveEvents(path, onEvent, onState) {
  const ctrl = new AbortController();
  let stopped = false;
  async function run() {
    while (!stopped) {
      try {
        const resp = await fetch(root + path, { headers: headers({ Accept: 'text/event-stream' }), signal: ctrl.signal });
        if (!resp.ok) throw new ApiError(resp.status, resp.statusText);
        onState && onState('live');
        const reader = resp.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
            if (data) onEvent(JSON.parse(data));
          }
        }
      } catch (e) {
        if (stopped) return;
        onState && onState(e.status === 401 ? 'unauthorized' : 'reconnecting');
        if (e.status === 401) return;
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 2000));
    }
  }
  run();
  return () => { stopped = true; ctrl.abort(); };
}

// HY2 SCALE's login (its scheme: the hex SHA-256 of the password), public like its build id.
export async function scaleLogin(username, password) {
  return api('POST', '/scale/api/login', { username, password: sha256(password) });
}

// Whether this node serves the HY2 SCALE face (so its admin can log in here); never an error.
export async function scaleLoginAvailable() {
  try { return (await fetch(root + '/scale/api/build-id')).ok; } catch { return false; }
}

export function fmtBytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export const fmtRate = (n) => `${fmtBytes(n)}/s`;
