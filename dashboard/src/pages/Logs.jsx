// The node log, live: the last lines, then each new one, at or above the chosen level.
import { useEffect, useRef, useState } from 'preact/hooks';
import { liveEvents } from '../api.js';

const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];
const KEEP = 1000;

export function Logs() {
  const [level, setLevel] = useState('INFO');
  const [lines, setLines] = useState([]);
  const [state, setState] = useState('connecting');
  const [follow, setFollow] = useState(true);
  const box = useRef(null);

  useEffect(() => {
    setLines([]);
    return liveEvents(`/api/v1/dashboard/log?level=${level}`,
      (ev) => setLines((l) => [...l.slice(-(KEEP - 1)), ev]), setState);
  }, [level]);
  useEffect(() => { if (follow && box.current) box.current.scrollTop = box.current.scrollHeight; }, [lines, follow]);

  return (
    <section aria-labelledby="logs-title">
      <h1 id="logs-title">Logs</h1>
      <div class="row">
        <label for="log-level">Lowest level shown</label>
        <select id="log-level" value={level} onChange={(e) => setLevel(e.currentTarget.value)}>
          {LEVELS.map((l) => <option value={l}>{l}</option>)}
        </select>
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> Follow new lines</label>
      </div>
      <p class="status" role="status" data-state={state}>Log stream: {state}, {lines.length} lines</p>
      <div class="log" ref={box} role="log" aria-label="Node log" tabindex="0">
        {lines.map((ev, i) => <div key={i} class={`lv-${ev.level.toLowerCase()}`} data-level={ev.level}>{ev.line}</div>)}
      </div>
    </section>
  );
}
