// The segment grid: one row per stage, one cell per segment, coloured by state.
// Cells are kept and updated in place so a poll never rebuilds the grid.

export function renderGrid(container, view) {
  const stages = view.stages;
  if (container.dataset.segments !== String(view.segments)) {
    container.replaceChildren();
    for (const stage of stages) {
      const row = document.createElement('div');
      row.className = 'grid-row';
      const label = document.createElement('span');
      label.className = 'grid-label';
      label.textContent = stage;
      const cells = document.createElement('div');
      cells.className = 'cells';
      for (let i = 0; i < view.segments; i += 1) {
        const cell = document.createElement('span');
        cell.className = 'cell';
        cell.dataset.segment = String(i);
        cell.dataset.stage = stage;
        cells.append(cell);
      }
      row.append(label, cells);
      container.append(row);
    }
    container.dataset.segments = String(view.segments);
  }
  const counts = {};
  for (const stage of stages) {
    const cells = container.querySelectorAll(`.cell[data-stage="${stage}"]`);
    view.grid[stage].forEach(([state, attempts, rerun], i) => {
      const cell = cells[i];
      counts[state] = (counts[state] || 0) + 1;
      if (cell.dataset.state === state && cell.dataset.attempts === String(attempts)) return;
      cell.dataset.state = state;
      cell.dataset.attempts = String(attempts);
      const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
      cell.title = `${stage}, segment ${i}: ${state}, ${tries}${rerun ? ' (re-run after a checksum mismatch)' : ''}`;
    });
  }
  const summary = Object.entries(counts).map(([state, n]) => `${n} ${state}`).join(', ');
  container.setAttribute('aria-label', `segment states: ${view.segments} segments × ${stages.length} stages; ${summary || 'none yet'}`);
}
