// vidproof recorder web UI: plain JavaScript, no build step, no external network.
// It talks only to this recorder's API (/api/...) with the bearer token from /api/login.
'use strict';

(() => {
  const SESSION_KEY = 'vidproof.session';
  const EXPORTS_KEY = 'vidproof.exports';
  const STATUS_EVERY_MS = 3000;      // camera status
  const PICTURE_EVERY_MS = 5000;     // thumbnails and timelines
  const EXPORT_POLL_MS = 1000;
  const ROLE_NAMES = {installer: 'installer', operator: 'operator', police: 'police',
                      auditor: 'auditor'};
  const VIEWS = {
    cameras: {roles: null, title: 'Cameras'},
    export: {roles: ['police'], title: 'Export'},
    verify: {roles: null, title: 'Verify a bundle'},
    journal: {roles: ['auditor'], title: 'Journal'},
  };
  // Who may see live pictures (the server decides; this only avoids asking in vain).
  const PICTURE_ROLES = ['installer', 'operator', 'police'];

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  const state = {
    session: loadJSON(sessionStorage, SESSION_KEY),   // {token, user, role}
    view: null,
    cameras: new Map(),                               // id -> card elements
    exports: loadJSON(sessionStorage, EXPORTS_KEY) || [],
    timers: {},
    journal: [],
  };

  // ------------------------------------------------------------------------------------
  // Small helpers

  function loadJSON(storage, key) {
    try { return JSON.parse(storage.getItem(key) || 'null'); } catch { return null; }
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) node.append(c);
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  function pad(n, w = 2) { return String(n).padStart(w, '0'); }

  // "2026-11-26 14:13:08 UTC" from an ISO string or a Date.
  function utcText(value, withZone = true) {
    if (value === null || value === undefined || value === '') return '—';
    const d = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    const text = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
                 `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    return withZone ? `${text} UTC` : text;
  }

  function clockText(d, seconds) {
    const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    return seconds ? `${hm}:${pad(d.getUTCSeconds())}` : hm;
  }

  function durationText(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${s} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} days ${Math.round((s % 86400) / 3600)} h`;
  }

  function bytesText(n) {
    if (n === null || n === undefined) return '—';
    const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  // datetime-local value (taken as UTC) <-> Date
  function toLocalInput(d) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
           `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function fromLocalInput(value) {
    if (!value) return null;
    const withSeconds = value.length === 16 ? `${value}:00` : value;
    const d = new Date(`${withSeconds}Z`);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  function isoSeconds(d) { return `${toLocalInput(d)}Z`; }

  function show(node, visible) { node.hidden = !visible; }

  function setError(id, message) {
    const node = document.getElementById(id);
    node.textContent = message || '';
    show(node, Boolean(message));
  }

  function notice(message) {
    const node = $('#notice');
    node.textContent = message || '';
    show(node, Boolean(message));
  }

  // ------------------------------------------------------------------------------------
  // The API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  const STATUS_WORDS = {
    400: 'The request was refused', 401: 'You are not logged in',
    403: 'Your role may not do this', 404: 'Not found', 409: 'Not ready yet',
    413: 'The file is too large', 422: 'Some input is not valid',
  };

  function plainError(status, detail) {
    let text = '';
    if (typeof detail === 'string') text = detail;
    else if (Array.isArray(detail)) {
      text = detail.map((d) => (d && d.msg) ? `${(d.loc || []).join('.')}: ${d.msg}` : String(d))
        .join('; ');
    } else if (detail) text = JSON.stringify(detail);
    const head = STATUS_WORDS[status] ||
      (status >= 500 ? 'The recorder failed to do this' : `Request failed (HTTP ${status})`);
    return text ? `${head}: ${text}.`.replace(/\.\.$/, '.') : `${head}.`;
  }

  async function api(method, path, {json, form} = {}) {
    const headers = {Accept: 'application/json'};
    if (state.session) headers.Authorization = `Bearer ${state.session.token}`;
    let body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let res;
    try {
      res = await fetch(path, {method, headers, body, cache: 'no-store'});
    } catch {
      throw new ApiError(0, 'The recorder does not answer. Check that the service is running ' +
                            'and that this computer can reach it.');
    }
    let data = null;
    if ((res.headers.get('content-type') || '').includes('json')) {
      try { data = await res.json(); } catch { data = null; }
    }
    if (!res.ok) {
      const error = new ApiError(res.status, plainError(res.status, data && data.detail));
      if (res.status === 401 && state.session && path !== '/api/login') {
        logout('Your session has ended (the recorder may have restarted). Please log in again.',
               true);
      }
      throw error;
    }
    return data;
  }

  function withToken(path) {
    const sep = path.includes('?') ? '&' : '?';
    return `${path}${sep}token=${encodeURIComponent(state.session.token)}`;
  }

  // ------------------------------------------------------------------------------------
  // Session and navigation

  function can(roles) { return !roles || (state.session && roles.includes(state.session.role)); }

  function login(session) {
    state.session = session;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    applySession();
    route();
  }

  function logout(message, keepPlace = false) {
    // The next user starts on the cameras page, unless a session ran out mid-way.
    if (!keepPlace) history.replaceState(null, '', location.pathname + location.search);
    state.session = null;
    state.exports = [];
    sessionStorage.removeItem(SESSION_KEY);
    sessionStorage.removeItem(EXPORTS_KEY);
    stopTimers();
    state.cameras.clear();
    $('#camera-list').replaceChildren();
    $('#exports-body').replaceChildren();
    $('#journal-body').replaceChildren();
    show($('#verify-result'), false);
    applySession();
    notice(message || '');
    route();
  }

  function applySession() {
    const s = state.session;
    show($('#nav'), Boolean(s));
    show($('#whoami'), Boolean(s));
    if (!s) return;
    $('#who-name').textContent = s.user;
    $('#who-role').textContent = ROLE_NAMES[s.role] || s.role;
    for (const a of $$('#nav a')) {
      const roles = a.dataset.roles ? a.dataset.roles.split(',') : null;
      show(a.parentElement, can(roles));
    }
  }

  function route() {
    if (!state.session) { switchView('login'); return; }
    let name = location.hash.replace(/^#/, '') || 'cameras';
    if (!VIEWS[name]) name = 'cameras';
    if (!can(VIEWS[name].roles)) {
      notice(`The ${VIEWS[name].title} page is for ${VIEWS[name].roles.join(' or ')} users; ` +
             `you are logged in as ${state.session.role}.`);
      name = 'cameras';
      history.replaceState(null, '', '#cameras');
    } else if (state.view !== null && state.view !== name) {
      notice('');
    }
    switchView(name);
  }

  function switchView(name) {
    const changed = state.view !== name;
    state.view = name;
    for (const v of $$('.view')) show(v, v.id === `view-${name}`);
    for (const a of $$('#nav a')) {
      if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = name === 'login' ? 'Log in · vidproof recorder'
      : `${VIEWS[name].title} · vidproof recorder`;
    stopTimers();
    if (name === 'login') {
      $('#login-user').focus();
      return;
    }
    if (changed) {
      const heading = $(`#view-${name} h1`);
      if (heading) heading.focus({preventScroll: true});
    }
    if (name === 'cameras') startCameras();
    if (name === 'export') startExportView();
    if (name === 'journal') loadJournal();
    if (state.exports.some((x) => !finished(x))) schedule('exports', pollExports, EXPORT_POLL_MS);
  }

  function schedule(name, fn, every) {
    clearInterval(state.timers[name]);
    state.timers[name] = setInterval(() => { if (!document.hidden) fn(); }, every);
  }

  function stopTimers() {
    for (const t of Object.values(state.timers)) clearInterval(t);
    state.timers = {};
  }

  // ------------------------------------------------------------------------------------
  // Login

  $('#login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const username = $('#login-user').value.trim();
    const password = $('#login-password').value;
    if (!username || !password) {
      setError('login-error', 'Enter your user name and your password.');
      return;
    }
    const button = $('#login-submit');
    button.disabled = true;
    setError('login-error', '');
    try {
      const r = await api('POST', '/api/login', {json: {username, password}});
      $('#login-password').value = '';
      notice('');
      login({token: r.token, role: r.role, user: username});
    } catch (e) {
      setError('login-error', e.status === 401
        ? 'Wrong user name or password.' : e.message);
    } finally {
      button.disabled = false;
    }
  });

  $('#logout').addEventListener('click', async () => {
    // The recorder forgets the token (best effort: the page forgets it in any case).
    try { await api('POST', '/api/logout'); } catch (e) { /* already ended */ }
    logout('You are logged out.');
  });
  window.addEventListener('hashchange', route);

  // ------------------------------------------------------------------------------------
  // Cameras: status, picture, timeline

  function startCameras() {
    refreshCameras().then(refreshPictures);
    schedule('status', refreshCameras, STATUS_EVERY_MS);
    schedule('pictures', refreshPictures, PICTURE_EVERY_MS);
  }

  $('#timeline-window').addEventListener('change', () => refreshPictures());

  async function refreshCameras() {
    let list;
    try {
      list = await api('GET', '/api/cameras');
    } catch (e) {
      setError('cameras-error', e.message);
      return;
    }
    setError('cameras-error', '');
    const seen = new Set();
    for (const cam of list) {
      seen.add(cam.camera_id);
      let card = state.cameras.get(cam.camera_id);
      if (!card) {
        card = makeCameraCard(cam);
        state.cameras.set(cam.camera_id, card);
        $('#camera-list').append(card.root);
      }
      updateCameraCard(card, cam);
    }
    for (const [id, card] of state.cameras) {
      if (!seen.has(id)) { card.root.remove(); state.cameras.delete(id); }
    }
    if (!list.length) setError('cameras-error', 'No camera is configured on this recorder.');
    $('#cameras-updated').textContent = `Status at ${utcText(new Date())}`;
    fillCameraSelect(list.map((c) => c.camera_id));
  }

  const STAT_FIELDS = [
    ['state', 'State'], ['frames', 'Frames recorded (received)'], ['dropped', 'Dropped frames'],
    ['last', 'Last frame'], ['stream', 'Stream'], ['restarts', 'Worker restarts'],
    ['disk', 'Disk used'], ['left', 'Time left on disk'], ['clock', 'Camera clock offset'],
    ['error', 'Last error'],
  ];

  function makeCameraCard(cam) {
    const id = cam.camera_id;
    const slug = id.replace(/[^A-Za-z0-9_-]/g, '_');
    const title = el('h2', {id: `cam-${slug}-title`, text: id});
    const badge = el('span', {class: 'state'});
    const loc = cam.location || {};
    const where = el('p', {class: 'where'},
      `${loc.label || ''} · ${loc.lat || '?'}, ${loc.lon || '?'} · ` +
      `${cam.close_shot ? 'close shot' : 'wide shot'} · ${cam.mode}`);
    const img = el('img', {class: 'thumb', width: 320, height: 180, hidden: true,
                           alt: `Latest picture recorded by camera ${id}`});
    const placeholder = el('p', {class: 'thumb-missing muted', text: 'No picture yet.'});
    const figure = el('figure', {class: 'picture'}, img, placeholder,
                      el('figcaption', {class: 'muted'}));
    if (!can(PICTURE_ROLES)) {
      placeholder.textContent = 'Live pictures are not shown to your role.';
    }
    img.addEventListener('load', () => {
      show(img, true);
      show(placeholder, false);
      img.dataset.loads = String(Number(img.dataset.loads || 0) + 1);
      figure.querySelector('figcaption').textContent =
        `Latest keyframe, fetched ${utcText(new Date())}`;
    });
    img.addEventListener('error', () => {
      show(img, false);
      show(placeholder, true);
      placeholder.textContent = 'No picture yet (nothing recorded, or the recorder did not ' +
                                'answer).';
    });
    const stats = el('dl', {class: 'stats'});
    const values = {};
    for (const [key, label] of STAT_FIELDS) {
      const dd = el('dd', {'data-field': key});
      values[key] = dd;
      stats.append(el('div', {}, el('dt', {text: label}), dd));
    }
    const timeline = el('div', {class: 'timeline'});
    const root = el('article', {class: 'camera card', 'data-camera': id,
                                'aria-labelledby': title.id},
      el('div', {class: 'camera-head'}, title, badge), where,
      el('div', {class: 'camera-body'}, figure, stats), timeline);
    if (can(['police'])) {
      const button = el('button', {type: 'button', class: 'export-this',
                                   text: `Export from ${id}…`});
      button.addEventListener('click', () => {
        $('#export-camera').value = id;
        location.hash = '#export';
      });
      root.append(el('p', {}, button));
    }
    return {root, badge, img, placeholder, values, timeline, id};
  }

  function updateCameraCard(card, cam) {
    const cls = {recording: 'ok', starting: 'warn', running: 'warn', restarting: 'bad',
                 failed: 'bad', camera_lost: 'bad', stopped: 'off', not_supervised: 'off'};
    const stateName = String(cam.state).replace(/_/g, ' ');
    card.badge.textContent = stateName;
    card.badge.className = `state state-${cls[cam.state] || 'warn'}`;
    card.root.dataset.state = cam.state;
    const v = card.values;
    v.state.textContent = stateName + (cam.worker_pid ? ` (worker pid ${cam.worker_pid})` : '');
    v.frames.textContent = `${cam.frames_out} (${cam.frames_in})`;
    card.framesOut = cam.frames_out;
    v.dropped.textContent = String(cam.dropped_frames);
    if (cam.last_frame_utc) {
      const age = (Date.now() - new Date(cam.last_frame_utc).getTime()) / 1000;
      v.last.textContent = `${utcText(cam.last_frame_utc)} (${durationText(age)} ago)`;
      v.last.classList.toggle('stale', age > 10);
    } else {
      v.last.textContent = 'none yet';
    }
    const s = cam.stream;
    v.stream.textContent = s ? `${s.codec || '?'} ${s.width || '?'}×${s.height || '?'}` +
                               (s.fps ? ` at ${Number(s.fps).toFixed(s.fps % 1 ? 2 : 0)} fps` : '')
                             : '—';
    v.restarts.textContent = String(cam.restarts);
    v.disk.textContent = `${bytesText(cam.disk_used_bytes)} (${bytesText(cam.disk_free_bytes)} free)`;
    v.left.textContent = cam.seconds_left === null ? 'unknown yet'
      : `${durationText(cam.seconds_left)} at the current rate`;
    v.clock.textContent = cam.clock_offset_ms === null ? 'not known (no camera clock)'
      : `${Number(cam.clock_offset_ms).toFixed(0)} ms`;
    v.error.textContent = cam.last_error || 'none';
  }

  async function refreshPictures() {
    const span = Number($('#timeline-window').value) || 3600;
    const now = new Date();
    const from = new Date(now.getTime() - span * 1000);
    await Promise.all(Array.from(state.cameras.values()).map(async (card) => {
      // A picture is asked for once the worker has signed frames (their segment is then
      // on disk), or when the store already had some (a previous run's).
      if (can(PICTURE_ROLES) && (card.framesOut > 0 || card.stored)) {
        card.img.src = withToken(`/api/cameras/${encodeURIComponent(card.id)}/thumbnail` +
                                 `?t=${now.getTime()}`);
      }
      try {
        const rec = await api('GET', `/api/recordings?camera=${encodeURIComponent(card.id)}` +
                                     `&from=${encodeURIComponent(from.toISOString())}` +
                                     `&to=${encodeURIComponent(now.toISOString())}`);
        drawTimeline(card, rec, from, now);
      } catch (e) {
        card.timeline.replaceChildren(el('p', {class: 'error', text: e.message}));
      }
    }));
  }

  function drawTimeline(card, rec, from, to) {
    if (rec.ranges.length) card.stored = true;  // footage on disk: a picture can be asked for
    const t0 = from.getTime();
    const span = to.getTime() - t0;
    const W = 1000;
    const x = (iso) => Math.min(W, Math.max(0, ((new Date(iso).getTime() - t0) / span) * W));
    let covered = 0;
    const bar = svg('svg', {viewBox: `0 0 ${W} 24`, preserveAspectRatio: 'none',
                            class: 'timeline-bar', role: 'img'});
    bar.append(svg('rect', {x: 0, y: 0, width: W, height: 24, class: 'tl-none'}));
    const add = (r, cls, label) => {
      const a = x(r.start);
      const b = x(r.end);
      const rect = svg('rect', {x: a, y: 0, width: Math.max(b - a, 1.5), height: 24,
                                class: cls});
      const title = svg('title');
      title.textContent = label;
      rect.append(title);
      bar.append(rect);
      return b - a;
    };
    for (const r of rec.ranges) {
      covered += add(r, 'tl-range', `recorded ${utcText(r.start)} to ${utcText(r.end)}, ` +
                                    `${r.frames} frames`);
    }
    for (const g of rec.gaps) add(g, 'tl-gap', `gap ${utcText(g.start)} to ${utcText(g.end)}`);
    const share = (covered / W) * 100;
    const pct = share > 0 && share < 1 ? 'under 1' : String(Math.round(share));
    const windowText = durationText(span / 1000);
    bar.setAttribute('aria-label',
      `Camera ${card.id}, last ${windowText}: ${rec.ranges.length} recorded ` +
      `range${rec.ranges.length === 1 ? '' : 's'}, ${rec.gaps.length} ` +
      `gap${rec.gaps.length === 1 ? '' : 's'}, ${pct}% of the time recorded`);

    const axis = el('div', {class: 'timeline-axis', 'aria-hidden': 'true'});
    const withSeconds = span <= 3600 * 1000;
    for (let i = 0; i <= 4; i += 1) {
      const d = new Date(t0 + (span * i) / 4);
      axis.append(el('span', {text: clockText(d, withSeconds)}));
    }

    const rows = [
      ...rec.ranges.map((r) => ['recorded', r]),
      ...rec.gaps.map((g) => ['gap', g]),
    ].sort((a, b) => new Date(b[1].start) - new Date(a[1].start)).slice(0, 50);
    const body = el('tbody');
    for (const [kind, r] of rows) {
      body.append(el('tr', {class: `row-${kind}`},
        el('td', {text: kind}), el('td', {text: utcText(r.start, false)}),
        el('td', {text: utcText(r.end, false)}),
        el('td', {text: durationText((new Date(r.end) - new Date(r.start)) / 1000)}),
        el('td', {text: kind === 'recorded' ? String(r.frames) : ''})));
    }
    const table = el('table', {class: 'compact'},
      el('thead', {}, el('tr', {},
        ...['What', 'From (UTC)', 'To (UTC)', 'Length', 'Frames'].map(
          (h) => el('th', {scope: 'col', text: h})))), body);
    const details = el('details', {},
      el('summary', {text: `Recorded ranges and gaps in the last ${windowText} ` +
                           `(${rec.ranges.length} recorded, ${rec.gaps.length} gaps, ` +
                           `${pct}% covered)`}),
      rows.length ? table : el('p', {class: 'muted', text: 'Nothing recorded in this window.'}));
    const old = card.timeline.querySelector('details');
    if (old && old.open) details.open = true;
    card.timeline.dataset.ranges = String(rec.ranges.length);
    card.timeline.dataset.gaps = String(rec.gaps.length);
    card.timeline.replaceChildren(el('h3', {class: 'sr-only', text: `Timeline of ${card.id}`}),
                                  bar, axis, details);
  }

  // ------------------------------------------------------------------------------------
  // Export

  function fillCameraSelect(ids) {
    const select = $('#export-camera');
    const current = select.value;
    const have = $$('option', select).map((o) => o.value);
    if (have.join('\n') === ids.join('\n')) return;
    select.replaceChildren(...ids.map((id) => el('option', {value: id, text: id})));
    if (ids.includes(current)) select.value = current;
  }

  function fillLast(seconds) {
    const to = new Date(Math.floor(Date.now() / 1000) * 1000 - 3000);  // leave time to sign
    const from = new Date(to.getTime() - seconds * 1000);
    $('#export-from').value = toLocalInput(from);
    $('#export-to').value = toLocalInput(to);
  }

  function tickClock() { $('#utc-now').textContent = utcText(new Date(), false); }

  async function startExportView() {
    tickClock();
    schedule('clock', tickClock, 1000);
    if (!$('#export-from').value) fillLast(60);
    if (!$('#export-camera').options.length) {
      try {
        const list = await api('GET', '/api/cameras');
        fillCameraSelect(list.map((c) => c.camera_id));
      } catch (e) {
        setError('export-error', e.message);
      }
    }
    renderExports();
  }

  for (const b of $$('#export-form [data-last]')) {
    b.addEventListener('click', () => fillLast(Number(b.dataset.last)));
  }

  $('#export-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    setError('export-error', '');
    const camera = $('#export-camera').value;
    const from = fromLocalInput($('#export-from').value);
    const to = fromLocalInput($('#export-to').value);
    const caseId = $('#export-case').value.trim();
    const reason = $('#export-reason').value.trim();
    const problems = [];
    if (!camera) problems.push('choose a camera');
    if (!from) problems.push('enter the start time (From)');
    if (!to) problems.push('enter the end time (To)');
    if (from && to && to <= from) problems.push('the end time must be later than the start');
    if (!caseId) problems.push('enter the case number');
    if (problems.length) {
      setError('export-error', `Cannot start the export: ${problems.join('; ')}.`);
      return;
    }
    const button = $('#export-submit');
    button.disabled = true;
    try {
      const job = await api('POST', '/api/exports', {json: {
        camera, from: isoSeconds(from), to: isoSeconds(to), case: caseId, reason}});
      job.from = isoSeconds(from);
      job.to = isoSeconds(to);
      state.exports.unshift(job);
      saveExports();
      renderExports();
      schedule('exports', pollExports, EXPORT_POLL_MS);
    } catch (e) {
      setError('export-error', e.message);
    } finally {
      button.disabled = false;
    }
  });

  function finished(job) { return job.state === 'done' || job.state === 'failed' || job.lost; }

  function saveExports() {
    sessionStorage.setItem(EXPORTS_KEY, JSON.stringify(state.exports.slice(0, 50)));
  }

  async function pollExports() {
    const pending = state.exports.filter((x) => !finished(x));
    if (!pending.length) { clearInterval(state.timers.exports); return; }
    await Promise.all(pending.map(async (job) => {
      try {
        const now = await api('GET', `/api/exports/${encodeURIComponent(job.id)}`);
        Object.assign(job, now);
      } catch (e) {
        if (e.status === 404) {
          job.lost = true;
          job.message = 'The recorder no longer knows this export (it was restarted).';
        }
      }
    }));
    saveExports();
    renderExports();
  }

  function renderExports() {
    const body = $('#exports-body');
    show($('#exports-table'), state.exports.length > 0);
    show($('#exports-empty'), state.exports.length === 0);
    body.replaceChildren(...state.exports.map((job) => {
      const pct = Math.round((job.progress || 0) * 100);
      const progress = el('progress', {max: 100, value: pct,
                                       'aria-label': `Export ${job.case}: ${pct}%`});
      const stateText = el('span', {class: `job-state job-${job.state}`,
                                    text: job.lost ? 'unknown' : job.state});
      const result = el('td', {class: 'job-result'});
      if (job.state === 'done') {
        const link = el('a', {href: withToken(`/api/exports/${encodeURIComponent(job.id)}/bundle`),
                              download: '', class: 'download',
                              text: `Download the bundle (${job.frames ?? '?'} frames)`});
        result.append(link, el('br'), el('span', {class: 'muted', text: job.message || ''}));
        if (job.verdict && job.verdict !== 'authentic') {
          result.append(el('br'), el('strong', {class: 'bad-text',
            text: `Verification at export: ${job.verdict.replace(/_/g, ' ')}`}));
        }
      } else if (job.state === 'failed' || job.lost) {
        result.append(el('span', {class: 'error-text',
                                  text: `The export failed: ${job.message || 'no reason given'}`}));
      } else {
        result.append(el('span', {class: 'muted', text: 'working…'}));
      }
      return el('tr', {'data-export': job.id, 'data-state': job.state},
        el('td', {text: job.case}), el('td', {text: job.camera}),
        el('td', {text: `${utcText(job.from, false)} to ${utcText(job.to, false)}`}),
        el('td', {}, progress, ' ', stateText), result);
    }));
  }

  // ------------------------------------------------------------------------------------
  // Verify

  $('#verify-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    setError('verify-error', '');
    const file = $('#verify-file').files[0];
    if (!file) {
      setError('verify-error', 'Choose an export bundle (.zip) first.');
      return;
    }
    const form = new FormData();
    form.append('file', file, file.name);
    const button = $('#verify-submit');
    button.disabled = true;
    button.textContent = 'Verifying…';
    show($('#verify-result'), false);
    try {
      const report = await api('POST', '/api/verify', {form});
      showReport(report, file.name);
    } catch (e) {
      setError('verify-error', e.message);
    } finally {
      button.disabled = false;
      button.textContent = 'Verify';
    }
  });

  function showReport(r, name) {
    const verdict = $('#verify-verdict');
    const words = {
      authentic: 'Authentic and complete: every frame matches the signed evidence and ' +
                 'nothing is missing.',
      not_authentic: 'NOT authentic or NOT complete: see the findings below.',
      error: 'Could not be verified: see the findings below.',
    };
    verdict.textContent = `${name}: ${words[r.verdict] || r.verdict}`;
    verdict.className = `verdict verdict-${r.verdict}`;
    verdict.dataset.verdict = r.verdict;
    const summary = $('#verify-summary');
    const items = [
      ['Cameras', (r.camera_ids || []).join(', ') || '—'],
      ['Frames', String(r.frames ?? '—')],
      ['First frame', utcText(r.first_utc)],
      ['Last frame', utcText(r.last_utc)],
      ['Locations', (r.locations || []).map((l) => (typeof l === 'string' ? l
        : `${l.label || ''} (${l.lat || '?'}, ${l.lon || '?'})`)).join('; ') || '—'],
    ];
    summary.replaceChildren(...items.map(([k, v]) => el('div', {}, el('dt', {text: k}),
                                                          el('dd', {text: v}))));
    const findings = r.findings || [];
    const table = $('#verify-findings');
    $('tbody', table).replaceChildren(...findings.map((f) => {
      const frames = f.first_frame === null || f.first_frame === undefined ? ''
        : (f.last_frame === null || f.last_frame === f.first_frame ? `${f.first_frame}`
          : `${f.first_frame}–${f.last_frame}`);
      const when = f.first_utc ? (f.last_utc && f.last_utc !== f.first_utc
        ? `${utcText(f.first_utc, false)} to ${utcText(f.last_utc, false)}`
        : utcText(f.first_utc, false)) : '';
      return el('tr', {class: `sev-${f.severity}`},
        el('td', {text: f.severity}), el('td', {text: f.kind}), el('td', {text: frames}),
        el('td', {text: when}), el('td', {text: f.message}));
    }));
    show(table, findings.length > 0);
    show($('#verify-no-findings'), findings.length === 0);
    show($('#verify-result'), true);
  }

  // ------------------------------------------------------------------------------------
  // Journal

  $('#journal-refresh').addEventListener('click', () => loadJournal());
  $('#journal-filter').addEventListener('input', () => renderJournal());

  async function loadJournal() {
    setError('journal-error', '');
    try {
      const page = await api('GET', '/api/journal?limit=1000');
      state.journal = page.entries;
      const status = $('#journal-status');
      status.textContent = page.verified
        ? 'The journal checks out: every entry is signed and in order.'
        : `The journal has ${page.problems.length} problem(s): entries were edited, removed or ` +
          'reordered, or are unsigned.';
      status.className = `verdict verdict-${page.verified ? 'authentic' : 'not_authentic'}`;
      status.dataset.verified = String(page.verified);
      show(status, true);
      const problems = $('#journal-problems');
      problems.replaceChildren(...page.problems.map((p) => el('li', {text: p})));
      show(problems, page.problems.length > 0);
      renderJournal();
    } catch (e) {
      setError('journal-error', e.message);
    }
  }

  function detailText(detail) {
    return Object.entries(detail || {}).map(([k, v]) =>
      `${k.replace(/_/g, ' ')}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
  }

  function renderJournal() {
    const needle = $('#journal-filter').value.trim().toLowerCase();
    const rows = state.journal.filter((e) => !needle ||
      `${e.actor} ${e.action} ${detailText(e.detail)}`.toLowerCase().includes(needle));
    $('#journal-body').replaceChildren(...rows.map((e) => el('tr',
      {'data-action': e.action, 'data-seq': e.seq},
      el('td', {text: String(e.seq)}), el('td', {text: utcText(e.utc, false)}),
      el('td', {text: e.actor}), el('td', {text: e.action.replace(/_/g, ' ')}),
      el('td', {class: 'detail', text: detailText(e.detail)}))));
    show($('#journal-table'), true);
    $('#journal-count').textContent = needle
      ? `${rows.length} of ${state.journal.length} entries` : `${rows.length} entries`;
  }

  // ------------------------------------------------------------------------------------
  // Start

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.view === 'cameras') { refreshCameras(); refreshPictures(); }
  });
  applySession();
  route();
})();
