// The fastpath node's dashboard: log in with the control token, then one page per part of the
// node, chosen by the URL hash (#/overview, #/users, #/streams) so any page can be bookmarked.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, token } from './api.js';
import { Overview } from './pages/Overview.jsx';
import { Users } from './pages/Users.jsx';
import { Streams } from './pages/Streams.jsx';
import { Sessions } from './pages/Sessions.jsx';
import { Logs } from './pages/Logs.jsx';
import { Settings } from './pages/Settings.jsx';
import './style.css';

const PAGES = { overview: ['Overview', Overview], users: ['Users', Users], streams: ['Streams', Streams], sessions: ['Sessions', Sessions], logs: ['Logs', Logs], settings: ['Settings', Settings] };

function currentPage() {
  const name = location.hash.replace(/^#\/?/, '');
  return PAGES[name] ? name : 'overview';
}

function Login({ onDone }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  async function submit(e) {
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
  return (
    <main class="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">fastpath node</h1>
        <label for="token">Control token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" value={value}
          onInput={(e) => setValue(e.currentTarget.value)} />
        {error && <p role="alert" class="error">{error}</p>}
        <button type="submit">Log in</button>
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
