// Peers and exits: the HY2 SCALE topology (this node, its outbound peers and what they report
// beneath them) as a graph, with latency and rates per peer.  Node positions are HY2 SCALE's
// shared graph layout: dragging a node saves it (PUT /scale/api/graph-layout) and every open
// page follows the layout stream, so two operators see the same picture.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, fmtRate, liveEvents } from '../api.js';

const W = 640, H = 420, R = 22;

// Every node of the tree with its parent's key: this node, then each outbound peer under it,
// then what each reports beneath itself (nested peers), keyed by their path.
function flatten(tree) {
  const out = [];
  const walk = (n, key, parent, depth) => {
    out.push({ key, parent, depth, node: n });
    (n.children || []).forEach((c) => walk(c, `${key}/${c.name}`, key, depth + 1));
  };
  const [me, ...peers] = tree;
  if (!me) return out;
  walk(me, me.name, null, 0);
  peers.forEach((p) => walk(p, p.name, me.name, 1));
  return out;
}

// A default place for nodes the layout does not hold: self in the middle, peers on rings.
function defaultPositions(items) {
  const pos = {};
  const rings = {};
  items.forEach((it) => { (rings[it.depth] = rings[it.depth] || []).push(it.key); });
  Object.entries(rings).forEach(([depth, keys]) => {
    keys.forEach((k, i) => {
      const d = Number(depth);
      if (d === 0) { pos[k] = { x: W / 2, y: H / 2 }; return; }
      const a = (2 * Math.PI * i) / keys.length - Math.PI / 2;
      const r = Math.min(W, H) * (0.22 + 0.16 * (d - 1));
      pos[k] = { x: W / 2 + r * Math.cos(a), y: H / 2 + r * Math.sin(a) };
    });
  });
  return pos;
}

function Graph({ items, saved, onMove }) {
  const svg = useRef(null);
  const [drag, setDrag] = useState(null);
  const base = defaultPositions(items);
  const at = (k) => (drag && drag.key === k ? drag : saved[k] || base[k]);
  function point(e) {
    const box = svg.current.getBoundingClientRect();
    return { x: ((e.clientX - box.left) / box.width) * W, y: ((e.clientY - box.top) / box.height) * H };
  }
  return (
    <svg ref={svg} viewBox={`0 0 ${W} ${H}`} class="graph" role="img" aria-label={`Topology: ${items.length} nodes`}
      onPointerMove={(e) => drag && setDrag({ key: drag.key, ...point(e) })}
      onPointerUp={() => { if (drag) { onMove(drag.key, { x: Math.round(drag.x), y: Math.round(drag.y) }); setDrag(null); } }}>
      {items.filter((it) => it.parent).map((it) => {
        const a = at(it.parent), b = at(it.key);
        return a && b && <line key={`l-${it.key}`} x1={a.x} y1={a.y} x2={b.x} y2={b.y} class={it.node.connected ? 'link up' : 'link down'} />;
      })}
      {items.map((it) => {
        const p = at(it.key);
        const n = it.node;
        const cls = n.is_self ? 'self' : n.disabled ? 'off' : n.connected ? 'up' : 'down';
        return (
          <g key={it.key} data-graph-node={it.key} class={`gnode ${cls}`} transform={`translate(${p.x},${p.y})`}
            onPointerDown={(e) => { e.currentTarget.ownerSVGElement.setPointerCapture(e.pointerId); setDrag({ key: it.key, ...p }); }}>
            <circle r={R} />
            <text y={R + 14} text-anchor="middle">{n.display_name || n.name}</text>
            {!n.is_self && <text y="4" text-anchor="middle" class="lat">{n.connected ? `${n.latency_ms} ms` : '–'}</text>}
          </g>
        );
      })}
    </svg>
  );
}

export function Peers() {
  const [tree, setTree] = useState(null);
  const [positions, setPositions] = useState({});
  const [error, setError] = useState(null);
  const [off, setOff] = useState(false);

  async function load() {
    try { setTree(await api('GET', '/scale/api/topology')); setError(null); } catch (err) {
      if (err.status === 404) setOff(true); else setError(err.message);
    }
  }
  useEffect(() => { load(); const t = setInterval(load, 3000); return () => clearInterval(t); }, []);
  // The shared layout: its current state at once, then every change anyone makes.
  useEffect(() => (off ? undefined : liveEvents('/scale/api/graph-layout/stream', (ev) => setPositions(ev.positions || {}))), [off]);

  async function move(key, p) {
    const next = { ...positions, [key]: p };
    setPositions(next);
    try { await api('PUT', '/scale/api/graph-layout', { positions: next }); } catch (err) { setError(err.message); }
  }

  if (off) return <section aria-labelledby="peers-title"><h1 id="peers-title">Peers</h1><p>The HY2 SCALE face is off on this node (scale.enabled), so it has no peers to show.</p></section>;
  const items = tree ? flatten(tree) : [];
  const peers = items.filter((it) => !it.node.is_self);
  return (
    <section aria-labelledby="peers-title">
      <h1 id="peers-title">Peers</h1>
      {error && <p role="alert" class="error">{error}</p>}
      {tree && <Graph items={items} saved={positions} onMove={move} />}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Peers of this node, {peers.length}</caption>
          <thead><tr><th scope="col">Peer</th><th scope="col">Address</th><th scope="col">State</th><th scope="col">Latency</th><th scope="col">Out</th><th scope="col">In</th></tr></thead>
          <tbody>
            {peers.map(({ key, node: n }) => (
              <tr key={key} data-peer={key}>
                <th scope="row">{key}</th>
                <td>{n.addr}</td>
                <td data-connected={String(n.connected)}>{n.disabled ? 'disabled' : n.connected ? 'connected' : (n.error || 'not connected')}</td>
                <td>{n.connected ? `${n.latency_ms} ms` : '–'}</td>
                <td>{fmtRate(n.tx_rate)}</td>
                <td>{fmtRate(n.rx_rate)}</td>
              </tr>
            ))}
            {!peers.length && <tr><td colSpan={6}>No peers yet: add one as a client in HY2 SCALE (/scale/).</td></tr>}
          </tbody>
        </table>
      </div>
    </section>
  );
}
