// watcher dashboard: reads the HTTP API with the token the user typed (kept in sessionStorage,
// sent only as an Authorization: Bearer header), follows GET /v1/events and acts through the
// POST endpoints. Everything that comes from the daemon is put into the page as text nodes: no
// HTML is ever built from strings.
'use strict';

(() => {
  const TOKEN_KEY = 'watcher.token';
  const STATES = ['update_available', 'pending_approval', 'updating', 'failed', 'up_to_date', 'unknown'];
  const STATE_TEXT = {
    up_to_date: 'up to date', update_available: 'update available', pending_approval: 'pending approval',
    rejected: 'rejected', updating: 'updating', failed: 'failed', unknown: 'unknown', updated: 'updated',
    skipped: 'skipped', rolled_back: 'rolled back', restarted: 'restarted', handed_over: 'handed over',
  };
  const EXIT_MEANING = {
    1: 'application error', 2: 'misuse of a shell builtin', 125: 'the container runtime failed',
    126: 'command cannot be executed', 127: 'command not found', 130: 'interrupted (SIGINT)',
    134: 'aborted (SIGABRT)', 137: 'killed (SIGKILL, often out of memory)', 139: 'segmentation fault (SIGSEGV)',
    143: 'terminated (SIGTERM)',
  };

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    status: null,
    containers: new Map(), // key "host/name" -> status
    runs: [],
    runLimit: 10,
    stream: null,
    retryBase: 2000,
    retry: 2000,
    loaded: false,
    pending: null, // container events that came while the list was being read, else null
    noReads: false, // the daemon lets nobody read (no token configured, no public_read)
  };
  const $ = (id) => document.getElementById(id);

  // el builds an element: props set text, class, listeners and a short list of attributes; the
  // children are elements or strings, which become text nodes.
  const ATTRS = new Set(['type', 'title', 'scope', 'colspan', 'datetime', 'hidden', 'role', 'value', 'tabindex']);
  function el(tag, props, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') n.textContent = String(v);
      else if (k === 'class') n.className = v;
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) n.addEventListener(ev, fn);
      else if (k.startsWith('data-') || k.startsWith('aria-') || ATTRS.has(k)) n.setAttribute(k, v === true ? '' : String(v));
      else throw new Error('attribute not allowed: ' + k);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      n.append(kid instanceof Node ? kid : String(kid));
    }
    return n;
  }

  // cell is a table cell with its column's name (phones show it beside the value) and one
  // wrapper around what it holds, so a phone's card lays it out as one value.
  function cell(label, props, ...kids) {
    return el('td', Object.assign({ 'data-label': label }, props || {}), el('div', null, ...kids));
  }

  // ---- the API ----

  class APIError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.error) || ('HTTP ' + status));
      this.status = status;
      this.reason = body && body.reason;
      this.retryAfter = retryAfter;
    }
  }

  function headers(accept) {
    const h = { Accept: accept };
    if (state.token) h.Authorization = 'Bearer ' + state.token;
    return h;
  }

  async function api(method, path) {
    const res = await fetch(path, { method, headers: headers('application/json'), credentials: 'omit', cache: 'no-store' });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) throw new APIError(res.status, body, res.headers.get('Retry-After'));
    return body;
  }

  // ---- formatting ----

  function shortDigest(d) {
    if (!d) return '';
    const hex = d.includes(':') ? d.slice(d.indexOf(':') + 1) : d;
    return hex.slice(0, 12);
  }
  function tagOf(ref) {
    if (!ref) return '';
    const at = ref.indexOf('@');
    if (at >= 0) ref = ref.slice(0, at);
    const slash = ref.lastIndexOf('/');
    const colon = ref.lastIndexOf(':');
    return colon > slash ? ref.slice(colon + 1) : 'latest';
  }
  function repoOf(ref) {
    const tag = tagOf(ref);
    return ref.endsWith(':' + tag) ? ref.slice(0, -tag.length - 1) : ref;
  }
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  function ago(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t) || t <= 0) return '';
    const s = Math.round((t - Date.now()) / 1000);
    const abs = Math.abs(s);
    if (abs < 60) return rtf.format(s, 'second');
    if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
    if (abs < 86400) return rtf.format(Math.round(s / 3600), 'hour');
    return rtf.format(Math.round(s / 86400), 'day');
  }
  function timeEl(iso) {
    if (!iso || Date.parse(iso) <= 0) return el('span', { class: 'muted', text: '–' });
    return el('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
  }
  function duration(ns) {
    const ms = ns / 1e6;
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  }
  function runDuration(r) {
    const a = Date.parse(r.started_at), b = Date.parse(r.finished_at);
    if (!(a > 0) || !(b > 0)) return 'running';
    return duration((b - a) * 1e6);
  }
  function exitMeaning(msg) {
    const m = /exit code (\d+)/.exec(msg || '');
    if (!m || /\(/.test(msg.slice(m.index + m[0].length, m.index + m[0].length + 2))) return '';
    const code = Number(m[1]);
    if (EXIT_MEANING[code]) return EXIT_MEANING[code];
    return code > 128 && code < 160 ? 'killed by signal ' + (code - 128) : '';
  }
  function key(c) { return (c.host || '') + '/' + c.name; }
  // shown is the state a container's badge and the filters use: a pending approval is its own.
  function shown(c) {
    if (c.approval && c.state !== 'up_to_date' && c.state !== 'updating') {
      if (c.approval.state === 'pending') return 'pending_approval';
      if (c.approval.state === 'rejected') return 'rejected';
    }
    return c.state || 'unknown';
  }
  function badge(s) { return el('span', { class: 'badge', 'data-state': s }, STATE_TEXT[s] || s); }

  // ---- notices and the session ----

  function notice(text, kind) {
    const n = $('notice');
    n.textContent = text;
    n.dataset.kind = kind || 'info';
    n.hidden = !text;
  }
  function setLive(mode, text) {
    $('live').dataset.live = mode;
    $('live').textContent = text;
  }
  function canAct() { return Boolean(state.token && state.status && state.status.token_configured); }

  function showSession() {
    const signedIn = Boolean(state.token);
    $('token-form').hidden = signedIn || state.noReads;
    $('sign-out').hidden = !signedIn;
    let mode;
    if (!state.status) mode = 'Enter the API token (http.token) to see the containers.';
    else if (!signedIn) mode = 'Read-only view: this daemon lets anyone read it (http.public_read). Enter the token to act.';
    else if (!state.status.token_configured) mode = 'Actions are disabled: http.token is not set.';
    else mode = 'Signed in: the actions are enabled.';
    $('mode').textContent = mode;
    document.body.dataset.mode = !state.status ? 'locked' : (canAct() ? 'act' : 'read');
    for (const id of ['overview', 'containers', 'history']) $(id).hidden = !state.status;
  }

  function locked(err) {
    state.status = null;
    stopStream();
    setLive('off', 'Not connected');
    if (err.status === 401) {
      if (state.token) notice('The token was not accepted (' + err.message + '). It was forgotten; enter it again.', 'error');
      forgetToken();
    } else if (err.status === 403) {
      state.noReads = true;
      notice('This daemon shows nothing: ' + err.message + '.', 'error');
    } else if (err.status === 429) {
      notice('Too many failed sign-ins from this address; try again in ' + (err.retryAfter || 'a few') + ' seconds.', 'error');
    } else {
      notice('The daemon could not be reached: ' + err.message + '. Retrying…', 'error');
      setTimeout(connect, 5000);
    }
    showSession();
  }

  function forgetToken() {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
  }

  async function connect() {
    try {
      state.status = await api('GET', '/v1/status');
    } catch (e) {
      locked(e);
      return;
    }
    showSession();
    renderStatus();
    openStream();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    if (!token) return;
    const before = state.token;
    state.token = token;
    try {
      state.status = await api('GET', '/v1/status');
    } catch (e) {
      state.token = before;
      notice(e.status === 401 ? 'That token was not accepted.' : 'Sign-in failed: ' + e.message, 'error');
      input.select();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = '';
    notice('', '');
    showSession();
    renderStatus();
    openStream();
  }

  function signOut() {
    forgetToken();
    notice('The token was forgotten.', 'ok');
    connect();
  }

  // ---- the live stream ----

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  // openStream reads GET /v1/events with fetch (EventSource cannot send a header); when the
  // stream answers, the state is loaded again, so nothing between two streams is missed. A
  // stream that ends or fails is opened again after the retry the daemon asked for, doubled up
  // to 30 seconds while it keeps failing.
  function openStream() {
    stopStream();
    const ctl = new AbortController();
    state.stream = ctl;
    (async () => {
      let opened = false;
      try {
        const res = await fetch('/v1/events', { headers: headers('text/event-stream'), signal: ctl.signal, credentials: 'omit', cache: 'no-store' });
        if (!res.ok) {
          let body = null;
          try { body = await res.json(); } catch (e) { body = null; }
          throw new APIError(res.status, body, res.headers.get('Retry-After'));
        }
        opened = true;
        state.retry = state.retryBase;
        setLive('on', 'Live');
        refresh();
        await readEvents(res.body.getReader());
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof APIError && e.status === 401) { locked(e); return; }
      }
      if (ctl.signal.aborted || state.stream !== ctl) return;
      if (!opened && !state.loaded) refresh();
      setLive('retry', 'Reconnecting…');
      const wait = state.retry;
      state.retry = Math.min(state.retry * 2, 30000);
      setTimeout(() => { if (state.stream === ctl) openStream(); }, wait);
    })();
  }

  async function readEvents(reader) {
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        dispatch(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  }

  function dispatch(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) state.retryBase = Number(value);
    }
    if (!data.length) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch (e) { return; }
    if (name === 'container') {
      if (state.pending) state.pending.push(payload);
      else {
        state.containers.set(key(payload), payload);
        renderContainers();
      }
    } else if (name === 'run_started' || name === 'run_finished') {
      onRun(name, payload);
    }
  }

  function onRun(name, run) {
    if (!state.status) return;
    if (name === 'run_started') state.status.running = run.id;
    else if (state.status.running === run.id) state.status.running = '';
    renderStatus();
    loadRuns();
    if (name === 'run_finished') loadStatus();
  }

  // ---- loading ----

  async function refresh() {
    await Promise.all([loadContainers(), loadRuns()]);
    state.loaded = true;
  }
  // loadContainers reads the list; events that arrive meanwhile are newer than it may be, so
  // they are applied after it.
  async function loadContainers() {
    state.pending = [];
    try {
      const body = await api('GET', '/v1/containers');
      state.containers = new Map(body.containers.map((c) => [key(c), c]));
    } catch (e) {
      failed(e, 'The containers could not be read');
    }
    for (const c of state.pending) state.containers.set(key(c), c);
    state.pending = null;
    renderContainers();
  }
  async function loadRuns() {
    try {
      const body = await api('GET', '/v1/runs?limit=' + state.runLimit);
      state.runs = body.runs;
      renderRuns();
    } catch (e) {
      failed(e, 'The history could not be read');
    }
  }
  async function loadStatus() {
    try {
      state.status = await api('GET', '/v1/status');
      renderStatus();
    } catch (e) {
      failed(e, 'The status could not be read');
    }
  }
  function failed(e, what) {
    if (e.status === 401) locked(e);
    else notice(what + ': ' + e.message, 'error');
  }

  // ---- rendering ----

  function renderStatus() {
    const st = state.status;
    if (!st) return;
    $('next-run').textContent = '';
    $('next-run').append(st.next_run ? timeEl(st.next_run) : 'no schedule');
    if (st.next_run && st.schedule) $('next-run').append(el('span', { class: 'muted' }, ' (' + st.schedule + ')'));
    $('now').textContent = st.running ? 'a run is in progress' + (st.queued ? ', another is queued' : '') : 'idle';
    $('version').textContent = st.version ? 'watcher ' + st.version : '';
  }

  function renderCounts(all) {
    const counts = {};
    for (const c of all) counts[shown(c)] = (counts[shown(c)] || 0) + 1;
    const list = $('counts');
    list.textContent = '';
    const filter = $('state-filter').value;
    list.append(el('li', null, el('button', {
      type: 'button', 'aria-pressed': String(filter === ''), 'data-focus': 'count-all', on: { click: () => setStateFilter('') },
    }, el('strong', null, String(all.length)), 'watched')));
    for (const s of STATES.concat(['rejected'])) {
      if (!counts[s]) continue;
      list.append(el('li', null, el('button', {
        type: 'button', 'aria-pressed': String(filter === s), 'data-focus': 'count-' + s, on: { click: () => setStateFilter(s) },
      }, el('strong', null, String(counts[s])), STATE_TEXT[s])));
    }
  }
  function setStateFilter(s) {
    $('state-filter').value = s;
    renderContainers();
  }

  function renderHosts(all) {
    const sel = $('host-filter');
    const hosts = [...new Set(all.map((c) => c.host || ''))].sort();
    const want = ['', ...hosts.filter((h) => h)];
    const have = [...sel.options].map((o) => o.value);
    if (want.join('\n') === have.join('\n')) return;
    const cur = sel.value;
    sel.textContent = '';
    for (const h of want) sel.append(el('option', { value: h }, h || 'all'));
    sel.value = want.includes(cur) ? cur : '';
  }

  function matches(c) {
    const q = $('search').value.trim().toLowerCase();
    const s = $('state-filter').value;
    const h = $('host-filter').value;
    return (!q || c.name.toLowerCase().includes(q)) && (!s || shown(c) === s) && (!h || (c.host || '') === h);
  }

  // keepFocus draws part of the page again with draw; the element that had the focus (by its
  // data-focus) gets it back, so keyboard users keep their place when an event changes a row.
  function keepFocus(draw) {
    const a = document.activeElement;
    const focused = a && a.dataset ? a.dataset.focus : '';
    draw();
    if (!focused || (document.activeElement && document.activeElement !== document.body)) return;
    const again = document.querySelector('[data-focus="' + CSS.escape(focused) + '"]');
    if (again) again.focus();
  }

  function renderContainers() { keepFocus(drawContainers); }

  // drawContainers draws the overview's counts and every host's table of containers.
  function drawContainers() {
    const all = [...state.containers.values()];
    renderCounts(all);
    renderHosts(all);
    const groups = new Map();
    for (const c of all.filter(matches).sort((a, b) => a.name.localeCompare(b.name))) {
      const h = c.host || '';
      if (!groups.has(h)) groups.set(h, []);
      groups.get(h).push(c);
    }
    const root = $('groups');
    root.textContent = '';
    const several = groups.size > 1 || (groups.size === 1 && !groups.has(''));
    for (const h of [...groups.keys()].sort()) {
      const label = h || 'this engine';
      const table = el('table', { class: 'cards' },
        el('caption', { class: 'sr-only' }, 'Containers on ' + label),
        el('thead', null, el('tr', null, ['Name', 'Image', 'Running', 'Available', 'Policy', 'State', 'Last update', 'Actions']
          .map((t) => el('th', { scope: 'col' }, t)))),
        el('tbody', null, groups.get(h).map(row)));
      root.append(el('div', { class: 'host', 'data-host': h }, several ? el('h3', null, label) : null, table));
    }
    $('no-match').hidden = groups.size > 0 || all.length === 0;
    if (all.length === 0) root.append(el('p', { class: 'muted' }, 'No watched containers. Label one watcher.enable=true.'));
  }

  function row(c) {
    const s = shown(c);
    const nameCell = cell('Name', null, el('span', { class: 'name' }, c.name),
      c.kind && c.kind !== 'container' ? el('span', { class: 'tag' }, c.kind) : null,
      c.replicas !== undefined && c.replicas !== null ? el('div', { class: 'muted' }, replicas(c.replicas)) : null);
    const running = cell('Running', null, el('code', null, tagOf(c.image)),
      c.local_digest ? [' ', el('code', { class: 'muted', title: c.local_digest }, shortDigest(c.local_digest))] : null);
    return el('tr', { 'data-name': c.name, 'data-host': c.host || '', 'data-state': s },
      nameCell,
      cell('Image', null, el('code', null, repoOf(c.image || ''))),
      running,
      cell('Available', null, available(c)),
      cell('Policy', null, c.policy || 'digest', c.mode === 'monitor' ? el('span', { class: 'tag' }, 'monitor') : null),
      stateCell(c, s),
      cell('Last update', null, timeEl(c.updated_at)),
      cell('Actions', { class: 'actions' }, actions(c, s)));
  }

  function replicas(r) {
    if (typeof r === 'number') return r + ' replicas';
    if (r && typeof r === 'object') {
      const running = r.running !== undefined ? r.running : r.Running;
      const desired = r.desired !== undefined ? r.desired : r.Desired;
      if (running !== undefined || desired !== undefined) return (running ?? '?') + '/' + (desired ?? '?') + ' replicas';
      return JSON.stringify(r);
    }
    return String(r);
  }

  function available(c) {
    const a = c.approval;
    const digest = (a && a.digest) || (c.state === 'update_available' ? c.remote_digest : '');
    const image = (a && a.new_image) || c.new_image;
    if (!digest && !image) return el('span', { class: 'muted' }, c.state === 'up_to_date' ? 'current' : '–');
    const out = el('span');
    if (image) out.append(el('code', null, tagOf(image)), ' ');
    if (digest) out.append(el('code', { class: 'muted', title: digest }, shortDigest(digest)));
    if (a && a.kind) out.append(el('span', { class: 'tag' }, a.kind));
    return out;
  }

  function stateCell(c, s) {
    const kids = [badge(s)];
    const f = c.last_error;
    if (f) {
      const meaning = f.reason === 'ContainerExited' || f.reason === 'RunContainerError' ? exitMeaning(f.message) : '';
      kids.push(el('p', { class: 'detail failure' },
        el('strong', null, f.stage + ' · ' + f.reason), ': ', f.message || '', meaning ? ' (' + meaning + ')' : ''));
    } else if (c.message) {
      kids.push(el('p', { class: 'detail muted' }, c.message));
    }
    if (c.approval && c.approval.lapsed) {
      kids.push(el('p', { class: 'detail muted' }, 'an earlier decision on ' + shortDigest(c.approval.lapsed) + ' lapsed: the registry moved on'));
    }
    return cell('State', null, kids);
  }

  function actions(c, s) {
    const out = [];
    // With several hosts, a name is only unique on its host.
    const q = '?container=' + encodeURIComponent(c.name) + (c.host ? '&host=' + encodeURIComponent(c.host) : '');
    const who = ' ' + (c.host ? c.host + '/' : '') + c.name;
    if (s === 'pending_approval' || s === 'rejected') {
      out.push(button('Approve', 'approve', c, 'Approve the update of' + who, () => act('POST', '/v1/approve' + q, 'Approved the update of' + who)));
    }
    if (s === 'pending_approval' || (c.approval && c.approval.state === 'approved' && c.state !== 'up_to_date')) {
      out.push(button('Reject', 'reject', c, 'Reject the update of' + who, () => act('POST', '/v1/reject' + q, 'Rejected the update of' + who), 'quiet'));
    }
    const outside = c.last_error && c.last_error.reason === 'OutsideWindow';
    const monitor = c.mode === 'monitor';
    let text = 'Update', label = 'Check and update' + who;
    if (monitor) [text, label] = ['Check', 'Check' + who + ' (monitor mode: updates are reported, never applied)'];
    else if (outside) [text, label] = ['Update now', 'Update' + who + ' now, outside its maintenance window'];
    out.push(button(text, 'update', c, label,
      () => act('POST', '/v1/update' + q + (outside && !monitor ? '&force=true' : ''), 'Asked for a run of' + who)));
    if (c.updated_at && Date.parse(c.updated_at) > 0) {
      out.push(confirmButton('Roll back', 'rollback', c, 'Roll' + who + ' back to the image it ran before its last update',
        () => act('POST', '/v1/rollback' + q, 'Asked to roll' + who + ' back')));
    }
    return out;
  }

  function button(text, action, c, label, fn, cls) {
    return el('button', {
      type: 'button', class: cls || null, 'data-act': true, 'data-action': action, 'aria-label': label, title: label,
      'data-focus': action + ':' + key(c), on: { click: (ev) => fn(ev.currentTarget) },
    }, text);
  }

  // confirmButton asks for a second press within five seconds before it acts.
  function confirmButton(text, action, c, label, fn) {
    const b = button(text, action, c, label, () => {
      if (b.dataset.armed) { delete b.dataset.armed; b.textContent = text; fn(); return; }
      b.dataset.armed = '1';
      b.textContent = 'Press again to ' + text.toLowerCase();
      setTimeout(() => { if (b.dataset.armed) { delete b.dataset.armed; b.textContent = text; } }, 5000);
    }, 'danger');
    return b;
  }

  async function act(method, path, done) {
    if (!canAct()) return;
    try {
      const body = await api(method, path);
      notice(done + (body && body.run_id ? ' (run ' + body.run_id + ')' : '') + '.', 'ok');
    } catch (e) {
      if (e.status === 401) { locked(e); return; }
      notice(done.replace(/^Asked/, 'Could not ask').replace(/^(Approved|Rejected)/, 'Could not record the decision on') + ': ' + e.message, 'error');
    }
  }

  function runOutcome(r) {
    const counts = {};
    for (const l of r.containers || []) counts[l.outcome] = (counts[l.outcome] || 0) + 1;
    const parts = Object.keys(counts).sort().map((o) => counts[o] + ' ' + (STATE_TEXT[o] || o));
    return { counts, text: r.error ? 'failed: ' + r.error : (parts.join(', ') || 'nothing to do') };
  }

  function renderRuns() { keepFocus(drawRuns); }

  function drawRuns() {
    const body = $('runs');
    body.textContent = '';
    for (const r of state.runs) {
      const o = runOutcome(r);
      body.append(el('tr', { 'data-run': r.id },
        cell('Started', null, timeEl(r.started_at)),
        cell('Trigger', null, r.trigger + (r.dry_run ? ' (dry run)' : '')),
        cell('Duration', null, runDuration(r)),
        cell('Outcomes', { class: r.error || o.counts.failed || o.counts.rolled_back ? 'run-error' : null }, o.text),
        cell('Details', null, el('button', {
          type: 'button', class: 'quiet', 'data-focus': 'run:' + r.id, 'aria-label': 'Details of the run started ' + ago(r.started_at),
          on: { click: () => showRun(r.id) },
        }, 'Details'))));
    }
    $('more-runs').hidden = state.runs.length < state.runLimit;
    const last = state.runs.find((r) => r.finished_at && Date.parse(r.finished_at) > 0);
    const lr = $('last-run');
    lr.textContent = '';
    if (last) lr.append(timeEl(last.started_at), ' · ' + last.trigger + ' · ' + runOutcome(last).text);
    else lr.append('none yet');
  }

  async function showRun(id) {
    let r;
    try {
      r = await api('GET', '/v1/runs/' + encodeURIComponent(id));
    } catch (e) {
      failed(e, 'The run could not be read');
      return;
    }
    $('run-title').textContent = 'Run ' + r.id;
    const body = $('run-body');
    body.textContent = '';
    body.append(el('p', null, 'Trigger ', el('strong', null, r.trigger), ', started ', timeEl(r.started_at), ', took ' + runDuration(r) + '.'));
    if (r.error) body.append(el('p', { class: 'run-error' }, r.error));
    const lines = r.containers || [];
    if (!lines.length) body.append(el('p', { class: 'muted' }, 'No container lines.'));
    else {
      body.append(el('table', { class: 'cards' },
        el('thead', null, el('tr', null, ['Container', 'Image', 'Digest', 'Outcome', 'Took', 'Downtime', 'Detail'].map((t) => el('th', { scope: 'col' }, t)))),
        el('tbody', null, lines.map(runLine))));
    }
    $('run-dialog').showModal();
  }

  function runLine(l) {
    const digest = shortDigest(l.old_digest) + (l.new_digest && l.new_digest !== l.old_digest ? ' → ' + shortDigest(l.new_digest) : '');
    const detail = l.failure ? l.failure.stage + ' · ' + l.failure.reason + ': ' + l.failure.message : (l.message || '');
    return el('tr', { 'data-line': l.name },
      cell('Container', null, el('span', { class: 'name' }, (l.host ? l.host + '/' : '') + l.name)),
      cell('Image', null, el('code', null, l.image + (l.new_image ? ' → ' + l.new_image : ''))),
      cell('Digest', null, el('code', null, digest || '–')),
      cell('Outcome', null, badge(l.outcome)),
      cell('Took', null, l.duration_ns ? duration(l.duration_ns) : '–'),
      cell('Downtime', null, l.downtime_ns ? duration(l.downtime_ns) : '–'),
      cell('Detail', { class: l.failure ? 'detail failure' : 'detail' }, detail));
  }

  // ---- wiring ----

  function bind() {
    $('token-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('filters').addEventListener('submit', (ev) => ev.preventDefault());
    for (const id of ['search', 'state-filter', 'host-filter']) $(id).addEventListener('input', renderContainers);
    $('check-now').addEventListener('click', () => act('POST', '/v1/update', 'Asked for a run of every watched container'));
    $('update-all').addEventListener('click', () => {
      const avail = [...state.containers.values()].filter((c) => shown(c) === 'update_available');
      if (!avail.length) { notice('No container has an update available.', 'info'); return; }
      const hosts = [...new Set(avail.map((c) => c.host).filter((h) => h))];
      const params = avail.map((c) => 'container=' + encodeURIComponent(c.name)).concat(hosts.map((h) => 'host=' + encodeURIComponent(h)));
      act('POST', '/v1/update?' + params.join('&'), 'Asked to update ' + avail.length + ' container(s)');
    });
    $('more-runs').addEventListener('click', () => { state.runLimit += 20; loadRuns(); });
    $('run-close').addEventListener('click', () => $('run-dialog').close());
    setInterval(() => { if (state.status) { renderRuns(); renderStatus(); } }, 30000); // relative times
  }

  bind();
  connect();
})();
