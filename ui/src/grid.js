// The segment grid: one row per stage, one cell per segment, coloured by state.
// Cells are kept and updated in place so a poll never rebuilds the grid. A cell's
// details (state, attempts) show on hover and, from the keyboard, for the cell the
// arrow keys select inside the focused grid.

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

// Hover and arrow keys show one cell's details in `output`.
export function inspectGrid(container, output) {
  let selected = null;
  const show = (cell) => {
    if (selected) selected.classList.remove('selected');
    selected = cell;
    if (!cell) { output.textContent = ''; return; }
    cell.classList.add('selected');
    output.textContent = cell.title;
  };
  container.addEventListener('mouseover', (event) => {
    if (event.target.classList.contains('cell')) show(event.target);
  });
  container.addEventListener('focus', () => {
    if (!selected || !container.contains(selected)) show(container.querySelector('.cell'));
  });
  container.addEventListener('blur', () => show(null));
  container.addEventListener('keydown', (event) => {
    const moves = { ArrowRight: [0, 1], ArrowLeft: [0, -1], ArrowDown: [1, 0], ArrowUp: [-1, 0], Home: [0, -Infinity], End: [0, Infinity] };
    const move = moves[event.key];
    if (!move || !selected) return;
    event.preventDefault();
    const rows = [...container.querySelectorAll('.cells')];
    const row = rows.indexOf(selected.parentElement);
    const index = [...selected.parentElement.children].indexOf(selected);
    const nextRow = rows[Math.min(rows.length - 1, Math.max(0, row + move[0]))];
    const cells = nextRow.children;
    show(cells[Math.min(cells.length - 1, Math.max(0, index + move[1]))]);
  });
  // after a poll: the selected cell's news, or the first cell of a rebuilt grid
  return () => {
    if (selected && container.contains(selected)) output.textContent = selected.title;
    else show(container.querySelector('.cell'));
  };
}
