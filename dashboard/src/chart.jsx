// A uPlot line chart that follows a growing series; redrawn by setData, never rebuilt.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { fmtRate } from './api.js';

const WINDOW = 120;   // seconds on the x axis, however few points there are yet

export function RateChart({ label, series, data, height = 180 }) {
  const box = useRef(null);
  const plot = useRef(null);

  useEffect(() => {
    const el = box.current;
    const styles = getComputedStyle(document.documentElement);
    const colors = [styles.getPropertyValue('--c1').trim(), styles.getPropertyValue('--c2').trim()];
    const axis = { stroke: styles.getPropertyValue('--muted').trim(), grid: { stroke: styles.getPropertyValue('--grid').trim() } };
    const opts = {
      width: el.clientWidth || 320,
      height,
      series: [{}, ...series.map((name, i) => ({ label: name, stroke: colors[i % 2], width: 2, value: (u, v) => (v == null ? '–' : fmtRate(v)) }))],
      axes: [axis, { ...axis, size: 70, values: (u, vals) => vals.map((v) => fmtRate(v)) }],
      scales: { x: { time: true, range: (u, min, max) => [max - WINDOW, max] }, y: { range: (u, min, max) => [0, Math.max(1024, max * 1.1)] } },
      legend: { live: false },
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.current && plot.current.setSize({ width: el.clientWidth, height }));
    ro.observe(el);
    return () => { ro.disconnect(); plot.current.destroy(); plot.current = null; };
  }, []);

  useEffect(() => { if (plot.current) plot.current.setData(data); }, [data]);

  // The highest rate shown, for screen readers (the canvas itself says nothing) and tests.
  const peak = Math.max(0, ...data.slice(1).flatMap((s) => s.filter((v) => v != null)));
  return (
    <figure class="chart" data-peak={peak}>
      <figcaption>{label}</figcaption>
      <div ref={box} role="img" aria-label={`${label}: peak ${fmtRate(peak)} in the last ${data[0].length} seconds`} />
    </figure>
  );
}
