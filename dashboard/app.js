// The respond-async operator dashboard: reads the admin API next to it, renders with DOM nodes and textContent only
// (job data is never parsed as HTML), and follows the live feed (api/events).
'use strict';

(() => {
  const STATUSES = ['queued', 'processing', 'complete', 'failed', 'canceled'];
  const PAGE = 50;
  const STATS_EVERY_MS = 3000;
  const POLL_MS = 10_000;
  const $ = (selector) => document.querySelector(selector);

  /** An element with text content and attributes; children appended. Never innerHTML. */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** A time: the clock time alone when it is today, the date too otherwise. */
  function time(ms) {
    if (ms === null || ms === undefined) return '—';
    const date = new Date(ms);
    return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    return `${(ms / 60_000).toFixed(1)} min`;
  }

  function json(value) {
    return value === undefined ? '(none)' : JSON.stringify(value, null, 2);
  }

  async function api(path, options) {
    const response = await fetch(path, { credentials: 'same-origin', ...options });
    if (response.status === 204) return null;
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error((body && (body.detail || body.title)) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // ---- overview ----

  /** A small SVG line of `values` (one per bucket), drawn with attributes only. */
  function sparkline(values, kind) {
    const width = 120;
    const height = 24;
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', `spark ${kind}`);
    svg.setAttribute('width', String(width));
    svg.setAttribute('height', String(height));
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('role', 'img');
    const total = values.reduce((a, b) => a + b, 0);
    svg.setAttribute('aria-label', `${kind}: ${total} in the window`);
    const max = Math.max(1, ...values);
    const step = values.length > 1 ? width / (values.length - 1) : width;
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    line.setAttribute('points', points.join(' '));
    svg.append(line);
    return svg;
  }

  async function loadStats() {
    const stats = await api('api/stats');
    const names = new Map();
    for (const { name, status, count } of stats.counts) {
      const row = names.get(name) || Object.fromEntries(STATUSES.map((s) => [s, 0]));
      row[status] = count;
      names.set(name, row);
    }
    const buckets = Math.round(stats.windowMs / stats.bucketMs);
    const first = Math.floor((stats.now - stats.windowMs) / stats.bucketMs) * stats.bucketMs;
    const series = new Map();
    for (const bucket of stats.throughput) {
      if (!names.has(bucket.name)) names.set(bucket.name, Object.fromEntries(STATUSES.map((s) => [s, 0])));
      const own = series.get(bucket.name) || { done: new Array(buckets + 1).fill(0), failed: new Array(buckets + 1).fill(0) };
      const index = Math.min(buckets, Math.max(0, Math.round((bucket.at - first) / stats.bucketMs)));
      own.done[index] += bucket.complete;
      own.failed[index] += bucket.failed;
      series.set(bucket.name, own);
    }
    const body = $('#counts tbody');
    body.replaceChildren();
    for (const name of [...names.keys()].sort()) {
      const counts = names.get(name);
      const own = series.get(name) || { done: new Array(buckets + 1).fill(0), failed: new Array(buckets + 1).fill(0) };
      const row = el('tr', { 'data-name': name }, el('th', { scope: 'row' }, name));
      for (const status of STATUSES) {
        const cell = el('td', { class: 'num', 'data-status': status });
        const link = el('a', { href: '#' }, counts[status]);
        link.addEventListener('click', (event) => {
          event.preventDefault();
          setFilters({ status, name });
        });
        cell.append(link);
        row.append(cell);
      }
      row.append(el('td', {}, sparkline(own.done, 'throughput')), el('td', {}, sparkline(own.failed, 'failures')));
      body.append(row);
    }
    if (names.size === 0) body.append(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No jobs yet')));
    $('#window').textContent = `· last ${duration(stats.windowMs)}`;
    const { waitMs, runMs } = stats.timings;
    $('#timings').textContent =
      `Queue wait p50 ${duration(waitMs.p50)} · p95 ${duration(waitMs.p95)} · p99 ${duration(waitMs.p99)}  —  ` +
      `Run time p50 ${duration(runMs.p50)} · p95 ${duration(runMs.p95)} · p99 ${duration(runMs.p99)}  ` +
      `(${runMs.count} finished jobs)`;
  }

  // ---- job list ----

  let cursor = null;
  let pages = 0;
  const rows = new Map();

  function query() {
    const form = $('#filters');
    const params = new URLSearchParams();
    for (const key of ['status', 'name', 'owner']) {
      const value = form.elements[key].value.trim();
      if (value) params.set(key, value);
    }
    for (const key of ['from', 'to']) {
      const value = form.elements[key].value;
      if (value) params.set(key, String(new Date(value).getTime()));
    }
    params.set('limit', String(PAGE));
    return params;
  }

  function setFilters(values) {
    const form = $('#filters');
    for (const key of ['status', 'name', 'owner', 'from', 'to']) form.elements[key].value = values[key] || '';
    showList();
    loadJobs(true).catch(report);
  }

  function jobRow(job) {
    const row = el(
      'tr',
      { 'data-id': job.id, 'data-status': job.status },
      el('td', {}, el('code', {}, job.id)),
      el('td', {}, job.name),
      el('td', {}, el('span', { class: 'status', 'data-status': job.status }, job.status)),
      el('td', {}, job.owner === null ? '—' : job.owner),
      el('td', { class: 'num' }, `${job.attempt}/${job.maxAttempts}`),
      el('td', {}, time(job.createdAt)),
      el('td', {}, time(job.updatedAt)),
      el('td', {}, rowAction(job)),
    );
    row.addEventListener('click', () => {
      location.hash = `job=${encodeURIComponent(job.id)}`;
    });
    return row;
  }

  /** The action a row offers at once: retry a failed or canceled job, cancel an unfinished one. */
  function rowAction(job) {
    const action =
      job.status === 'failed' || job.status === 'canceled'
        ? 'retry'
        : job.status === 'queued' || job.status === 'processing'
          ? 'cancel'
          : null;
    if (action === null || (action === 'cancel' && job.cancelRequested)) return null;
    const button = el('button', { type: 'button', 'data-action': action }, action === 'retry' ? 'Retry' : 'Cancel');
    button.addEventListener('click', (event) => {
      event.stopPropagation(); // not a click on the row (which opens the job)
      button.disabled = true;
      send(job.id, action)
        .then(() => refreshRow(job.id))
        .catch(report);
    });
    return button;
  }

  async function loadJobs(reset) {
    const params = query();
    if (!reset && cursor) params.set('cursor', cursor);
    const page = await api(`api/jobs?${params}`);
    const body = $('#jobs tbody');
    if (reset) {
      body.replaceChildren();
      rows.clear();
      pages = 0;
    }
    pages += 1;
    for (const job of page.jobs) {
      const row = jobRow(job);
      rows.set(job.id, row);
      body.append(row);
    }
    cursor = page.nextCursor;
    $('#more').hidden = cursor === null;
    if (rows.size === 0) body.append(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No jobs match')));
  }

  /** A job changed: its row shows the change in place (or leaves, when gone). */
  async function refreshRow(id) {
    const row = rows.get(id);
    if (!row) return false;
    try {
      const job = await api(`api/jobs/${encodeURIComponent(id)}`);
      const next = jobRow(job);
      row.replaceWith(next);
      rows.set(id, next);
    } catch (error) {
      if (error.status !== 404) throw error;
      row.remove();
      rows.delete(id);
    }
    return true;
  }

  // ---- job detail ----

  let shown = null;

  function field(list, name, value) {
    list.append(el('dt', {}, name), el('dd', {}, value));
  }

  async function showJob(id) {
    shown = id;
    $('#list').hidden = true;
    $('#detail').hidden = false;
    $('#action-result').textContent = '';
    let job;
    try {
      job = await api(`api/jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status !== 404) throw error;
      $('#detail-id').textContent = id;
      $('#fields').replaceChildren(el('dt', {}, 'Status'), el('dd', {}, 'gone (deleted or expired)'));
      for (const selector of ['#input', '#result']) $(selector).textContent = '';
      $('#attempts tbody').replaceChildren();
      $('#delivery').replaceChildren();
      $('#deliveries tbody').replaceChildren();
      for (const button of document.querySelectorAll('#actions button')) button.disabled = true;
      return;
    }
    if (shown !== id) return;
    $('#detail-id').textContent = job.id;
    const fields = $('#fields');
    fields.replaceChildren();
    fields.dataset.status = job.status;
    field(fields, 'Status', el('span', { class: 'status', 'data-status': job.status }, job.status));
    field(fields, 'Job', job.name);
    field(fields, 'Owner', job.owner === null ? '—' : job.owner);
    field(fields, 'Attempt', `${job.attempt} of ${job.maxAttempts}`);
    if (job.progress !== null) field(fields, 'Progress', `${job.progress}%${job.message ? ` · ${job.message}` : ''}`);
    if (job.error) field(fields, 'Error (as clients see it)', `${job.error.message}${job.error.code ? ` (${job.error.code})` : ''}`);
    if (job.idempotencyKey !== null) field(fields, 'Idempotency key', job.idempotencyKey);
    field(fields, 'Created', time(job.createdAt));
    field(fields, 'Started', time(job.startedAt));
    field(fields, 'Finished', time(job.finishedAt));
    field(fields, 'Updated', time(job.updatedAt));
    if (job.expiresAt !== null) field(fields, 'Expires', time(job.expiresAt));
    if (job.leaseOwner !== null) field(fields, 'Worker', job.leaseOwner);
    if (job.cancelRequested) field(fields, 'Cancel', 'requested');
    $('#input').textContent = json(job.input);
    $('#result').textContent = job.resultUrl ? `${json(job.result)}\n(see other: ${job.resultUrl})` : json(job.result);
    const attempts = $('#attempts tbody');
    attempts.replaceChildren();
    for (const attempt of job.attempts) {
      attempts.append(
        el(
          'tr',
          {},
          el('td', { class: 'num' }, attempt.attempt),
          el('td', {}, time(attempt.startedAt)),
          el('td', {}, duration(attempt.finishedAt - attempt.startedAt)),
          el('td', {}, attempt.error.code || '—'),
          el(
            'td',
            { class: 'error' },
            attempt.error.message,
            attempt.error.stack ? el('pre', { class: 'stack' }, attempt.error.stack) : null,
          ),
          el('td', {}, attempt.retried ? 'retried' : 'failed'),
        ),
      );
    }
    if (job.attempts.length === 0) attempts.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'None')));
    const delivery = $('#delivery');
    delivery.replaceChildren();
    const deliveries = $('#deliveries tbody');
    deliveries.replaceChildren();
    $('#deliveries').hidden = job.delivery === null;
    if (job.delivery === null) field(delivery, 'Callback', 'none');
    else {
      field(delivery, 'Callback URL', job.delivery.callbackUrl);
      field(delivery, 'Status', job.delivery.status || 'not yet due');
      field(delivery, 'Attempts', job.delivery.attempts);
      if (job.delivery.nextAt !== null) field(delivery, 'Next attempt', time(job.delivery.nextAt));
      for (const attempt of job.delivery.history) {
        deliveries.append(
          el(
            'tr',
            { 'data-outcome': attempt.outcome },
            el('td', { class: 'num' }, attempt.attempt),
            el('td', {}, time(attempt.at)),
            el('td', {}, attempt.outcome),
            el('td', { class: 'num' }, attempt.httpStatus === null ? '—' : attempt.httpStatus),
            el('td', {}, attempt.reason || ''),
          ),
        );
      }
      if (job.delivery.history.length === 0) {
        deliveries.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No attempt yet')));
      }
    }
    const finished = job.status === 'complete' || job.status === 'failed' || job.status === 'canceled';
    const enabled = {
      cancel: !finished,
      retry: job.status === 'failed' || job.status === 'canceled',
      redeliver: finished && job.delivery !== null,
      delete: true,
    };
    for (const button of document.querySelectorAll('#actions button')) {
      button.disabled = !enabled[button.dataset.action];
    }
  }

  /** One action on one job through the admin API. */
  function send(id, action) {
    const path = action === 'delete' ? `api/jobs/${encodeURIComponent(id)}` : `api/jobs/${encodeURIComponent(id)}/${action}`;
    return api(path, {
      method: action === 'delete' ? 'DELETE' : 'POST',
      // Required by the admin API for every action: a page of another site cannot send it.
      headers: { 'X-Respond-Async-Admin': '1' },
    });
  }

  async function act(action) {
    const id = shown;
    if (!id) return;
    if (action === 'delete' && !window.confirm(`Delete job ${id}?`)) return;
    const status = $('#action-result');
    try {
      await send(id, action);
      status.textContent = `${action}: done`;
    } catch (error) {
      status.textContent = `${action}: ${error.message}`;
    }
    if (shown === id) await showJob(id);
    await refreshRow(id);
  }

  function showList() {
    shown = null;
    $('#detail').hidden = true;
    $('#list').hidden = false;
  }

  function route() {
    const match = /^#job=(.+)$/.exec(location.hash);
    if (match) showJob(decodeURIComponent(match[1])).catch(report);
    else showList();
  }

  function report(error) {
    $('#live').textContent = `error: ${error.message}`;
    $('#live').dataset.state = 'down';
  }

  // ---- live feed ----

  let statsTimer = null;
  let listTimer = null;

  function soon(kind) {
    // The figures read many rows (every job, the jobs of the window): at most every few seconds, however busy.
    if (kind === 'stats' && !statsTimer) {
      statsTimer = setTimeout(() => {
        statsTimer = null;
        loadStats().catch(report);
      }, STATS_EVERY_MS);
    }
    if (kind === 'list' && !listTimer) {
      listTimer = setTimeout(() => {
        listTimer = null;
        // A new job shows at the top of the first page; later pages read already stay as they are.
        if (pages <= 1) loadJobs(true).catch(report);
      }, 500);
    }
  }

  function follow() {
    const events = new EventSource('api/events');
    const live = $('#live');
    events.addEventListener('open', () => {
      live.textContent = 'live';
      live.dataset.state = 'live';
    });
    events.addEventListener('error', () => {
      live.textContent = 'reconnecting…';
      live.dataset.state = 'down';
    });
    events.addEventListener('change', (event) => {
      const change = JSON.parse(event.data);
      soon('stats');
      refreshRow(change.id)
        .then((known) => {
          if (!known) soon('list');
        })
        .catch(report);
      if (shown === change.id) showJob(change.id).catch(report);
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#filters').addEventListener('submit', (event) => {
      event.preventDefault();
      loadJobs(true).catch(report);
    });
    $('#more').addEventListener('click', () => loadJobs(false).catch(report));
    $('#back').addEventListener('click', (event) => {
      event.preventDefault();
      history.pushState(null, '', location.pathname + location.search);
      showList();
    });
    for (const button of document.querySelectorAll('#actions button')) {
      button.addEventListener('click', () => act(button.dataset.action).catch(report));
    }
    window.addEventListener('hashchange', route);
    // The live feed carries what this process hears; with a store without a change feed (SQLite, memory), a worker
    // in another process changes jobs unheard: unfinished rows and the figures are read again now and then.
    setInterval(() => {
      soon('stats');
      for (const [id, row] of rows) {
        const status = row.getAttribute('data-status');
        if (status === 'queued' || status === 'processing') refreshRow(id).catch(report);
      }
      if (shown) showJob(shown).catch(report);
    }, POLL_MS);
    Promise.all([loadStats(), loadJobs(true)]).then(route, report);
    follow();
  });
})();
