// The checksum chart: per segment, per rung, the worst per-frame hash distance, as
// grouped bars, with each rung's threshold as a dashed line. Plain SVG.

const SVG = 'http://www.w3.org/2000/svg';
const COLOURS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function renderChart(container, view) {
  const { rungs, threshold, max_distance: distances } = view.checksum;
  // drawn at the width it is shown at, so the labels keep their size on a phone
  const width = Math.max(280, Math.min(1000, Math.round(container.clientWidth || 640)));
  const key = `${JSON.stringify(view.checksum)}${view.segments}:${width}`;
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  container.replaceChildren();
  const measured = rungs.some((r) => distances[r].some((d) => d !== null));
  if (!view.segments || !rungs.length || !measured) {
    const p = document.createElement('p');
    p.className = 'hint';
    p.textContent = 'No checksum yet.';
    container.append(p);
    return;
  }
  const height = Math.round(Math.min(260, Math.max(180, width * 0.35)));
  const pad = { left: 36, right: 8, top: 10, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const all = rungs.flatMap((r) => distances[r].filter((d) => d !== null));
  const top = Math.max(8, ...all, ...rungs.map((r) => threshold[r])) * 1.1;
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const slot = plotW / view.segments;
  const bar = Math.max(1, (slot * 0.8) / rungs.length);
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': 'chart-title' });
  svg.append(el('title', { id: 'chart-title' }, `Checksum distances of ${view.segments} segments for ${rungs.join(', ')}`));
  for (let t = 0; t <= 4; t += 1) {
    const value = Math.round((top / 4) * t);
    svg.append(el('line', { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value), class: 'axis' }));
    svg.append(el('text', { x: pad.left - 4, y: y(value) + 4, 'text-anchor': 'end', class: 'tick' }, value));
  }
  rungs.forEach((rung, r) => {
    const colour = COLOURS[r % COLOURS.length];
    const group = el('g', { class: 'series', 'data-rung': rung, fill: colour });
    distances[rung].forEach((d, i) => {
      if (d === null) return;
      const x = pad.left + i * slot + slot * 0.1 + r * bar;
      const rect = el('rect', { x, y: y(d), width: bar, height: Math.max(0.5, y(0) - y(d)), 'data-segment': i });
      rect.append(el('title', {}, `segment ${i}, ${rung}: distance ${d} (threshold ${threshold[rung]})`));
      group.append(rect);
    });
    svg.append(group);
    svg.append(el('line', {
      x1: pad.left, x2: width - pad.right, y1: y(threshold[rung]), y2: y(threshold[rung]),
      stroke: colour, class: 'threshold', 'data-rung': rung,
    }));
  });
  const every = Math.ceil(view.segments / 12);
  for (let i = 0; i < view.segments; i += every) {
    svg.append(el('text', { x: pad.left + (i + 0.5) * slot, y: height - 10, 'text-anchor': 'middle', class: 'tick' }, i));
  }
  const legend = document.createElement('ul');
  legend.className = 'chart-legend';
  rungs.forEach((rung, r) => {
    const item = document.createElement('li');
    item.style.setProperty('--swatch', COLOURS[r % COLOURS.length]);
    item.textContent = `${rung} (threshold ${threshold[rung]})`;
    legend.append(item);
  });
  container.append(svg, legend);
}
