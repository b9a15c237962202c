// The fastpath node's dashboard: log in with the control token or the HY2 SCALE admin, then one page per part of the
// node, chosen by the URL hash (#/overview, #/users, #/streams) so any page can be bookmarked.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { sha256 } from 'js-sha256';
import { api, scaleLogin, scaleLoginAvailable, token } from './api.js';
import { Overview } from './pages/Overview.jsx';
import { Users } from './pages/Users.jsx';
import { Streams } from './pages/Streams.jsx';
import { Sessions } from './pages/Sessions.jsx';
import { Logs } from './pages/Logs.jsx';
import { Settings } from './pages/Settings.jsx';
import { Peers } from './pages/Peers.jsx';
import './style.css';

const PAGES = { overview: ['Overview', Overview], users: ['Users', Users], streams: ['Streams', Streams], sessions: ['Sessions', Sessions], peers: ['Peers', Peers], logs: ['Logs', Logs], settings: ['Settings', Settings] };

function currentPage() {
  const name = location.hash.replace(/^#\/?/, '');
  return PAGES[name] ? name : 'overview';
}

// Two ways in, as the node has two administrator credentials: the control token, or the HY2
// SCALE admin account (when that face is on).  HY2 SCALE's login takes the hex SHA-256 of the
// password; js-sha256 computes it because WebCrypto's digest exists only in secure contexts,
// and a node is often opened over plain http on its address.
function Login({ onDone }) {
  const [mode, setMode] = useState('token');
  const [scaleOn, setScaleOn] = useState(false);
  const [value, setValue] = useState('');
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [change, setChange] = useState(null);     // {session, current} while a change is forced
  const [error, setError] = useState(null);
  useEffect(() => { scaleLoginAvailable().then(setScaleOn); }, []);

  async function submitToken(e) {
    e.preventDefault();
    token.set(value);
    try {
      await api('GET', '/api/v1/node');
      onDone();
    } catch (err) {
      token.clear();
      setError(err.status === 401 ? 'That token is not the control token of this node.' : err.message);
    }
  }
  async function submitAdmin(e) {
    e.preventDefault();
    try {
      const r = await scaleLogin(username, password);
      token.set(r.token);
      if (r.force_password_change) { setChange({ current: password }); setError(null); return; }
      onDone();
    } catch (err) {
      token.clear();
      setError(err.status === 401 ? 'Wrong username or password.' : err.message);
    }
  }
  if (change) return <PasswordChange current={change.current} username={username} onDone={onDone} />;
  return (
    <main class="login">
      <form onSubmit={mode === 'token' ? submitToken : submitAdmin} aria-labelledby="login-title">
        <h1 id="login-title">fastpath node</h1>
        {mode === 'token' ? (
          <>
            <label for="token">Control token</label>
            <input id="token" name="token" type="password" autocomplete="current-password" value={value}
              onInput={(e) => setValue(e.currentTarget.value)} />
          </>
        ) : (
          <>
            <label for="username">Username</label>
            <input id="username" name="username" autocomplete="username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" value={password}
              onInput={(e) => setPassword(e.currentTarget.value)} />
          </>
        )}
        {error && <p role="alert" class="error">{error}</p>}
        <button type="submit">Log in</button>
        {scaleOn && (
          <button type="button" class="ghost" onClick={() => { setMode(mode === 'token' ? 'admin' : 'token'); setError(null); }}>
            {mode === 'token' ? 'Use the HY2 SCALE admin account' : 'Use the control token'}
          </button>
        )}
      </form>
    </main>
  );
}

// The default admin password must be changed before anything else, as HY2 SCALE's own UI
// forces it (and the node refuses every other route to such a session beyond loopback).
function PasswordChange({ current, username, onDone }) {
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    if (next.length < 8) { setError('Use at least 8 characters.'); return; }
    if (next !== again) { setError('The two new passwords differ.'); return; }
    if (next === current) { setError('Choose a password other than the default one.'); return; }
    try {
      await api('PUT', '/scale/api/settings/password', { current_password: sha256(current), new_password: sha256(next) });
      const r = await scaleLogin(username, next);   // the change ended every session
      token.set(r.token);
      onDone();
    } catch (err) { setError(err.message); }
  }
  return (
    <main class="login">
      <form onSubmit={submit} aria-labelledby="pw-title">
        <h1 id="pw-title">Change the admin password</h1>
        <p class="hint">This node's HY2 SCALE admin still has the default password.</p>
        <label for="pw-new">New password</label>
        <input id="pw-new" type="password" autocomplete="new-password" value={next} onInput={(e) => setNext(e.currentTarget.value)} />
        <label for="pw-again">New password again</label>
        <input id="pw-again" type="password" autocomplete="new-password" value={again} onInput={(e) => setAgain(e.currentTarget.value)} />
        {error && <p role="alert" class="error">{error}</p>}
        <button type="submit">Change password</button>
      </form>
    </main>
  );
}

function Theme() {
  const [dark, setDark] = useState(() => document.documentElement.dataset.theme === 'dark');
  useEffect(() => { document.documentElement.dataset.theme = dark ? 'dark' : 'light'; localStorage.setItem('fastpath.theme', dark ? 'dark' : 'light'); }, [dark]);
  return <button type="button" class="ghost" aria-pressed={dark} onClick={() => setDark(!dark)}>{dark ? 'Light' : 'Dark'} theme</button>;
}

function App() {
  const [authed, setAuthed] = useState(null);
  const [page, setPage] = useState(currentPage());
  useEffect(() => {
    const f = () => setPage(currentPage());
    addEventListener('hashchange', f);
    // Logged in already when the stored token is still accepted.
    // (No token stored: straight to the login form, without a request bound to fail.)
    if (token.get()) api('GET', '/api/v1/node').then(() => setAuthed(true), () => setAuthed(false));
    else setAuthed(false);
    return () => removeEventListener('hashchange', f);
  }, []);
  if (authed === null) return <p class="loading">Loading…</p>;
  if (!authed) return <Login onDone={() => setAuthed(true)} />;
  const [title, Page] = PAGES[page];
  return (
    <>
      <header class="top">
        <strong>fastpath</strong>
        <nav aria-label="Pages">
          {Object.entries(PAGES).map(([name, [label]]) => (
            <a href={`#/${name}`} aria-current={name === page ? 'page' : undefined}>{label}</a>
          ))}
        </nav>
        <Theme />
        <button type="button" class="ghost" onClick={() => { token.clear(); setAuthed(false); }}>Log out</button>
      </header>
      <main id="main" aria-label={title}><Page /></main>
    </>
  );
}

const saved = localStorage.getItem('fastpath.theme');
document.documentElement.dataset.theme = saved || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
render(<App />, document.getElementById('app'));
