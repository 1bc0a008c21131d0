// kinoit's web page: sign in, the jobs and the submit form, one job's page.
// Hash routes: #/ (jobs), #/jobs/<id> (a job). Plain ES modules, no framework.

import { ApiError, api, apiUrl, blobUrl, ipfsUrl, onThisOrigin, setToken, token } from './api.js';
import { renderChart } from './chart.js';
import { inspectGrid, renderGrid } from './grid.js';
import { Player } from './player.js';
import { uploadFile } from './upload.js';

const POLL_MS = 1000;
const JOBS_POLL_MS = 2000;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const main = document.getElementById('main');
const errorBox = document.querySelector('[data-testid="error"]');
const logout = document.querySelector('[data-testid="logout"]');
let stopView = () => {};

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function describe(error) {
  if (error instanceof ApiError) {
    const field = error.body.field ? ` (${error.body.field})` : '';
    return `${error.message}${field}`;
  }
  return String(error && error.message ? error.message : error);
}

function mount(templateId) {
  stopView();
  stopView = () => {};
  const view = document.getElementById(templateId).content.cloneNode(true);
  main.replaceChildren(view);
  return main;
}

function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    let delay = ms;
    try {
      const again = await fn();
      if (again === false) return;
      if (typeof again === 'number') delay = Math.max(ms, again);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) { signOut('Your token is no longer accepted; sign in again.'); return; }
      showError(describe(error));
      if (error instanceof ApiError && error.status === 404) return; // nothing to follow
    }
    if (!stopped) timer = window.setTimeout(run, delay);
  };
  run();
  return () => { stopped = true; window.clearTimeout(timer); };
}

function shortId(text, keep = 10) {
  return text && text.length > keep + 2 ? `${text.slice(0, keep)}…` : text || '';
}

function duration(job) {
  const end = job.finished_at || Date.now() / 1000;
  const seconds = Math.max(0, end - job.created_at);
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fraction(tasks) {
  return tasks && tasks.total ? tasks.done / tasks.total : 0;
}

// ------------------------------------------------------------------ sign in
function signOut(message = '') {
  setToken(null);
  logout.hidden = true;
  renderSignIn();
  showError(message);
}

function renderSignIn() {
  const root = mount('signin-view');
  const form = root.querySelector('#signin');
  const input = form.querySelector('[data-testid="token"]');
  input.focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const candidate = input.value.trim();
    showError('');
    let valid = false;
    try {
      valid = (await api('session', { method: 'POST', json: { token: candidate } })).valid;
    } catch (error) {
      showError(`Cannot sign in: ${describe(error)}`);
      return;
    }
    if (!valid) {
      showError('That token is wrong: orchestrate does not accept it.');
      input.select();
      return;
    }
    setToken(candidate);
    route();
  });
}

// --------------------------------------------------------------------- home
function renderHome() {
  const root = mount('home-view');
  const form = root.querySelector('#submit-form');
  const source = form.querySelector('[data-testid="source"]');
  const fileInput = form.querySelector('[data-testid="upload"]');
  const progress = form.querySelector('[data-testid="upload-progress"]');
  const status = form.querySelector('#upload-status');
  const profile = form.querySelector('[data-testid="profile"]');
  const ladderField = form.querySelector('#ladder-field');
  const submit = form.querySelector('[data-testid="submit"]');
  const drop = form.querySelector('#drop');
  let uploading = false;

  profile.addEventListener('change', () => { ladderField.hidden = profile.value !== 'ladder'; });

  async function upload(file) {
    if (!file || uploading) return;
    uploading = true;
    submit.disabled = true;
    showError('');
    progress.hidden = false;
    progress.value = 0;
    status.textContent = `Uploading ${file.name}…`;
    try {
      const cid = await uploadFile(file, (sent, total) => {
        progress.value = total ? sent / total : 1;
        status.textContent = `Uploading ${file.name}: ${Math.floor((100 * sent) / (total || 1))}%`;
      });
      source.value = cid;
      status.textContent = `Uploaded ${file.name} (${file.size} bytes).`;
    } catch (error) {
      progress.hidden = true;
      status.textContent = '';
      showError(`Upload refused: ${describe(error)}`);
    } finally {
      uploading = false;
      submit.disabled = false;
      fileInput.value = '';
    }
  }

  fileInput.addEventListener('change', () => upload(fileInput.files[0]));
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    upload(event.dataTransfer.files[0]);
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError('');
    const data = new FormData(form);
    const body = { source: String(data.get('source') || '').trim() };
    try {
      if (profile.value === 'ladder') body.ladder = JSON.parse(String(data.get('ladder') || ''));
      else body.profile = profile.value;
    } catch {
      showError('The ladder is not valid JSON (ladder).');
      return;
    }
    const callback = String(data.get('callback_url') || '').trim();
    if (callback) body.callback_url = callback;
    const metadata = String(data.get('metadata') || '').trim();
    if (metadata) {
      try { body.metadata = JSON.parse(metadata); } catch { showError('The metadata is not valid JSON (metadata).'); return; }
    }
    submit.disabled = true;
    try {
      const reply = await api('', { method: 'POST', json: body });
      window.location.hash = `#/jobs/${reply.job_id}`;
    } catch (error) {
      showError(`Not submitted: ${describe(error)}`);
    } finally {
      submit.disabled = false;
    }
  });

  const tbody = root.querySelector('[data-testid="jobs"]');
  const empty = root.querySelector('#jobs-empty');
  stopView = every(JOBS_POLL_MS, async () => {
    const page = await api('jobs?limit=50');
    renderJobs(tbody, page.jobs);
    empty.hidden = page.jobs.length > 0;
  });
}

function renderJobs(tbody, jobs) {
  const rows = jobs.map((job) => {
    const row = document.createElement('tr');
    row.dataset.jobId = job.job_id;
    row.dataset.state = job.state;
    const link = document.createElement('a');
    link.href = `#/jobs/${job.job_id}`;
    link.textContent = shortId(job.job_id, 12);
    link.title = job.job_id;
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = fraction(job.tasks);
    bar.setAttribute('aria-label', `${job.tasks.done} of ${job.tasks.total} tasks done`);
    const cells = [link, job.state, bar, duration(job), shortId(job.source, 14)];
    for (const content of cells) {
      const td = document.createElement('td');
      td.append(content);
      row.append(td);
    }
    row.children[1].className = `state-${job.state}`;
    row.children[4].title = job.source || '';
    row.addEventListener('click', (event) => {
      if (event.target.closest('a')) return;
      window.location.hash = `#/jobs/${job.job_id}`;
    });
    return row;
  });
  tbody.replaceChildren(...rows);
}

// ---------------------------------------------------------------------- job
function renderJob(jobId) {
  const root = mount('job-view');
  root.querySelector('.job-id').textContent = jobId;
  const stateEl = root.querySelector('[data-testid="job-state"]');
  const progress = root.querySelector('[data-testid="progress"]');
  const progressText = root.querySelector('.progress-text');
  const cancel = root.querySelector('[data-testid="cancel"]');
  const failure = root.querySelector('[data-testid="failure"]');
  const facts = root.querySelector('.facts');
  const counts = root.querySelector('.counts tbody');
  const grid = root.querySelector('[data-testid="segment-grid"]');
  const gridNote = root.querySelector('#grid-note');
  const reselect = inspectGrid(grid, root.querySelector('#grid-detail'));
  const thumbs = root.querySelector('[data-testid="thumbnails"]');
  const chart = root.querySelector('[data-testid="checksum-chart"]');
  const links = root.querySelector('#links');
  const player = new Player(root.querySelector('[data-testid="player"]'), root.querySelector('#player-status'));
  const shownThumbs = new Map();
  let linksFor = null;

  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api(`jobs/${jobId}`, { method: 'DELETE' });
    } catch (error) {
      showError(`Not cancelled: ${describe(error)}`);
    } finally {
      cancel.disabled = false;
    }
  });

  function renderStatus(job) {
    stateEl.textContent = job.state;
    stateEl.className = `state state-${job.state}`;
    progress.value = fraction(job.tasks);
    progressText.textContent = `${job.tasks.done} / ${job.tasks.total} tasks · ${duration(job)}`;
    cancel.hidden = TERMINAL.has(job.state);
    failure.hidden = !job.error;
    failure.textContent = job.error ? `Failed: ${job.error}` : '';
    const rows = [['Source', job.source], ['Created', new Date(job.created_at * 1000).toLocaleString()]];
    if (job.manifest) rows.push(['Manifest', job.manifest]);
    if (job.metadata && Object.keys(job.metadata).length) rows.push(['Metadata', JSON.stringify(job.metadata)]);
    facts.replaceChildren(...rows.flatMap(([name, value]) => {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value;
      return [dt, dd];
    }));
    counts.replaceChildren(...Object.entries(job.stages || {}).map(([stage, c]) => {
      const tr = document.createElement('tr');
      for (const value of [stage, c.done, c.leased, c.retrying, c.failed, c.total]) {
        const td = document.createElement('td');
        td.textContent = String(value);
        tr.append(td);
      }
      return tr;
    }));
    renderPlayer(job);
    renderLinks(job);
  }

  function renderPlayer(job) {
    const outputs = job.outputs || {};
    if (job.state === 'completed' && outputs.directory) {
      player.load(ipfsUrl(outputs.directory, 'hls/master.m3u8'));
    } else if (job.preview && job.preview.hls && job.preview.segments > 0 && !TERMINAL.has(job.state)) {
      player.load(onThisOrigin(job.preview.hls), { live: true });
    }
  }

  function renderLinks(job) {
    const outputs = job.outputs || {};
    if (job.state !== 'completed' || linksFor === job.manifest) return;
    linksFor = job.manifest;
    const dir = outputs.directory;
    const items = [];
    for (const rung of Object.keys(outputs.mp4 || {})) {
      items.push([`${rung}.mp4`, dir ? ipfsUrl(dir, `${rung}.mp4`) : ipfsUrl(outputs.mp4[rung]), `${rung}.mp4`]);
    }
    if (outputs.storyboard) items.push(['storyboard.jpg', dir ? ipfsUrl(dir, 'storyboard.jpg') : ipfsUrl(outputs.storyboard), 'storyboard.jpg']);
    if (outputs.storyboard_vtt) items.push(['storyboard.vtt', dir ? ipfsUrl(dir, 'storyboard.vtt') : ipfsUrl(outputs.storyboard_vtt), 'storyboard.vtt']);
    if (dir) items.push(['every output (folder)', `${ipfsUrl(dir)}/`, null]);
    if (job.manifest) items.push(['manifest.json (dag-json)', apiUrl(`jobs/${job.job_id}/manifest`), 'manifest.json', true]);
    links.replaceChildren(...items.map(([label, url, filename, bearer]) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = url;
      a.textContent = label;
      if (filename) a.download = filename;
      if (bearer) {
        // an API route: a plain link cannot send the token, so fetch it and save that
        a.addEventListener('click', async (event) => {
          event.preventDefault();
          try {
            const objectUrl = await blobUrl(url);
            const save = document.createElement('a');
            save.href = objectUrl;
            save.download = filename;
            save.click();
            window.setTimeout(() => URL.revokeObjectURL(objectUrl), 60000);
          } catch (error) {
            showError(`Cannot download ${label}: ${describe(error)}`);
          }
        });
      }
      li.append(a);
      return li;
    }));
  }

  function renderThumbs(view) {
    view.thumbnails.forEach((cid, i) => {
      if (!cid || shownThumbs.has(i)) return;
      const img = document.createElement('img');
      img.alt = `segment ${i}`;
      img.title = `segment ${i}`;
      img.dataset.segment = String(i);
      img.width = 160;
      img.height = 90;
      img.decoding = 'async';
      img.src = ipfsUrl(cid);
      const after = [...thumbs.children].find((other) => Number(other.dataset.segment) > i);
      thumbs.insertBefore(img, after || null);
      shownThumbs.set(i, img);
    });
  }

  let finalRound = false;
  stopView = every(POLL_MS, async () => {
    const started = performance.now();
    const [job, view] = await Promise.all([api(`jobs/${jobId}`), api(`jobs/${jobId}/segments`)]);
    // a long job's view costs the server more: never ask for more than a third of its time
    const next = 3 * (performance.now() - started);
    renderStatus(job);
    renderGrid(grid, view);
    if (document.activeElement === grid) reselect();
    gridNote.hidden = !(job.state === 'completed' && view.segments === 0);
    renderThumbs(view);
    renderChart(chart, view);
    if (TERMINAL.has(job.state)) {
      // one more round after the end, for the last thumbnails; then stop polling
      if (finalRound && shownThumbs.size >= view.thumbnails.filter(Boolean).length) return false;
      finalRound = true;
    }
    return next;
  });
  const stopPolling = stopView;
  stopView = () => { stopPolling(); player.destroy(); };
}

// ------------------------------------------------------------------- router
function route() {
  showError('');
  if (!token()) {
    logout.hidden = true;
    renderSignIn();
    return;
  }
  logout.hidden = false;
  const match = window.location.hash.match(/^#\/jobs\/([0-9A-Za-z]+)$/);
  if (match) renderJob(match[1]);
  else renderHome();
  main.focus({ preventScroll: true });
}

logout.addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);
route();
