// The whole node at a glance: figures and rate charts from the live SSE route (one event a
// second, computed once per API process for every open dashboard).
import { useEffect, useState } from 'preact/hooks';
import { fmtBytes, fmtRate, liveEvents } from '../api.js';
import { RateChart } from '../chart.jsx';

const KEEP = 300;   // seconds of history in the charts

export function Overview() {
  const [tick, setTick] = useState(null);
  const [state, setState] = useState('connecting');
  const [hist, setHist] = useState({ t: [], tx: [], rx: [], mout: [], min: [] });

  useEffect(() => liveEvents('/api/v1/dashboard/live', (ev) => {
    setTick(ev);
    setHist((h) => {
      const cut = (a, v) => [...a.slice(-(KEEP - 1)), v];
      return { t: cut(h.t, ev.t), tx: cut(h.tx, ev.rates.tx), rx: cut(h.rx, ev.rates.rx),
        mout: cut(h.mout, ev.rates.media_out), min: cut(h.min, ev.rates.media_in) };
    });
  }, setState), []);

  const cards = tick ? [
    ['Rate to clients', fmtRate(tick.rates.tx), 'rate-tx'],
    ['Rate from clients', fmtRate(tick.rates.rx), 'rate-rx'],
    ['Live connections', tick.connections, 'connections'],
    ['Open proxy streams', tick.proxy_streams, 'proxy-streams'],
    ['Users online', tick.users_online, 'users-online'],
    ['Streams live', tick.streams_live, 'streams-live'],
    ['Viewers', tick.viewers, 'viewers'],
    ['Traffic total', fmtBytes(tick.totals.tx + tick.totals.rx), 'traffic-total'],
  ] : [];

  return (
    <section aria-labelledby="ov-title">
      <h1 id="ov-title">Overview</h1>
      <p class="status" role="status" data-state={state}>Live figures: {state}</p>
      <dl class="cards">
        {cards.map(([label, value, id]) => (
          <div class="card" key={id}><dt>{label}</dt><dd data-figure={id}>{value}</dd></div>
        ))}
      </dl>
      <div class="charts">
        <RateChart label="Proxy traffic (Hysteria 2)" series={['to clients', 'from clients']} data={[hist.t, hist.tx, hist.rx]} />
        <RateChart label="Stream relay" series={['to viewers', 'from origins']} data={[hist.t, hist.mout, hist.min]} />
      </div>
      <p class="hint" data-ticks={hist.t.length}>{hist.t.length} seconds shown</p>
    </section>
  );
}
