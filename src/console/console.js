/*
 * console.js - the Crossroads operator console: no framework, no build step, no other host.
 *
 * Reads the admin API of the gateway that served it (same origin; the Content-Security-Policy
 * allows nothing else) with the key the operator typed in, kept in sessionStorage:
 *   GET  /v1/admin/counts            the stage bar and the tenant chips, every 3 s
 *   GET  /v1/admin/sagas?...         the table (cursor pages: "Load more"), and the chart
 *   GET  /v1/admin/sagas/{id}        one saga: summary, stage timeline, log entries
 *   POST /v1/admin/sagas/{id}/retry  the retry button of a saga that ended in error
 *
 * The chart of intake and completions per minute is computed here from the saga listing (the
 * last 30 minutes by creation time, at most CHART_MAX_PAGES pages): intake is a saga's
 * created_ms, a completion is a saga in a final status counted at its updated_at. The listing
 * covers every gateway process sharing the Redis, where /metrics counters are per process.
 *
 * Everything from the server is put in the page as text (textContent, never innerHTML), so a
 * message or a logged body cannot inject markup. Routes are hash routes: #/ (with the filters
 * as a query: #/?status=error&tenant=...) and #/saga/<id>.
 */
(function () {
  'use strict';

  var KEY_STORE = 'crossroads.console.key';
  var STATUSES = ['pending', 'requested', 'origin_mapped', 'master_mapped', 'destination_mapped',
    'synced', 'canceled', 'rejected', 'error'];
  var FINAL = { synced: 1, canceled: 1, rejected: 1, error: 1 };
  var TYPES = ['order_create', 'order_update_status', 'order_accept', 'order_cancel', 'order_reset',
    'order_bol', 'order_drop'];
  var FILTERS = ['status', 'type', 'tenant', 'order_id', 'since', 'until'];
  var PAGE = 50;
  var TICK_MS = 3000;
  var CHART_EVERY_TICKS = 5; /* the chart every 15 s */
  var CHART_MINUTES = 30;
  var CHART_MAX_PAGES = 10; /* 200 sagas a page */
  var SVG = 'http://www.w3.org/2000/svg';

  var state = {
    key: null,
    view: null,
    filters: {},
    items: [],
    next: '',
    pages: 0,
    tenants: [],
    sagaId: null,
    saga: null,
    tick: 0,
    busy: {},
    timer: null,
    sagaTimer: null,
    lastListHash: '#/'
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function label(s) { return String(s || '').replace(/_/g, ' '); }

  function pill(status) {
    return el('span', { class: 'pill st-' + (STATUSES.indexOf(status) >= 0 || status === 'retry' ? status : 'unknown'), text: label(status) });
  }

  function toast(msg) {
    var t = $('toast');
    t.textContent = msg;
    t.classList.add('show');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.classList.remove('show'); }, 4000);
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function localTime(ms, withDate) {
    if (!isFinite(ms)) return '';
    var d = new Date(ms);
    var t = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    if (!withDate) return t;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + t;
  }

  function age(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + pad(Math.floor((s % 3600) / 60)) + ' min';
    return Math.floor(s / 86400) + ' d';
  }

  function delta(ms) {
    if (ms < 1000) return '+' + ms + ' ms';
    if (ms < 60000) return '+' + (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    return '+' + Math.round(ms / 1000) + ' s';
  }

  function isoMs(s) { var t = Date.parse(s); return isFinite(t) ? t : NaN; }

  /* RFC 3339 to the second: the API's since/until take at most 23 characters. */
  function isoSec(ms) { return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z'); }

  /* ------------------------------------------------------------------ API */

  function ApiError(status, detail) {
    this.status = status;
    this.detail = detail;
    this.message = detail;
  }

  function detailText(body, status) {
    if (body && typeof body.detail === 'string') return body.detail;
    if (body && Array.isArray(body.detail) && body.detail.length) {
      return body.detail.map(function (d) {
        return (Array.isArray(d.loc) ? d.loc.join('.') + ': ' : '') + (d.msg || '');
      }).join('; ');
    }
    return 'HTTP ' + status;
  }

  /* Resolves to the JSON body of a 2xx; rejects with an ApiError. 401 and 403 end the session. */
  function api(method, path, key) {
    var k = key || state.key;
    return fetch(path, {
      method: method,
      headers: { 'X-API-Key': k, 'Accept': 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error'
    }).then(function (r) {
      return r.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (r.ok) return body;
        var err = new ApiError(r.status, detailText(body, r.status));
        if (!key && (r.status === 401 || r.status === 403)) sessionLost(r.status);
        throw err;
      });
    }, function () {
      throw new ApiError(0, 'The gateway did not answer');
    });
  }

  function sessionLost(status) {
    forgetKey();
    if (status === 403) showDenied();
    else {
      location.hash = '#/';
      showLogin('The key was refused (it may have been removed); enter it again.');
    }
  }

  /* ------------------------------------------------------------------ views */

  var VIEWS = ['view-login', 'view-denied', 'view-list', 'view-saga'];

  function show(view) {
    VIEWS.forEach(function (v) { $(v).hidden = v !== view; });
    var signedIn = view === 'view-list' || view === 'view-saga';
    $('nav').hidden = !signedIn;
    $('session').hidden = !signedIn;
    state.view = view;
  }

  function showLogin(message) {
    stopTimers();
    wipeData();
    show('view-login');
    $('login-error').textContent = message || '';
    $('login-key').value = '';
    $('login-key').focus();
  }

  function showDenied() {
    stopTimers();
    wipeData();
    show('view-denied');
    $('denied-back').focus();
  }

  function forgetKey() {
    state.key = null;
    try { sessionStorage.removeItem(KEY_STORE); } catch (e) { /* storage off */ }
  }

  /* Nothing read with a key stays in the page once the key is gone. */
  function wipeData() {
    state.items = [];
    state.next = '';
    state.pages = 0;
    state.saga = null;
    ['sagas-body', 'stage-bar', 'stage-legend', 'tenant-counts', 'chart', 'timeline', 'logs',
      'saga-summary', 'saga-request'].forEach(function (id) { clear($(id)); });
    ['counts-updated', 'chart-updated', 'chart-note', 'list-updated', 'list-count', 'list-error',
      'saga-error'].forEach(function (id) { $(id).textContent = ''; });
    $('load-more').hidden = true;
  }

  function stopTimers() {
    clearInterval(state.timer);
    state.timer = null;
    clearTimeout(state.sagaTimer);
    state.sagaTimer = null;
  }

  function startTimer() {
    if (state.timer) return;
    state.timer = setInterval(onTick, TICK_MS);
  }

  function live() { return $('live').checked && !document.hidden; }

  function onTick() {
    $('clock').textContent = localTime(Date.now());
    if (!live() || !state.key) return;
    state.tick++;
    if (state.view === 'view-list') {
      loadCounts();
      /* The first page follows new sagas unless the operator paged on or is in the table. */
      var inTable = $('sagas').contains(document.activeElement);
      if (state.pages <= 1 && !inTable) loadList(false);
      if (state.tick % CHART_EVERY_TICKS === 0) loadChart();
    }
  }

  /* ------------------------------------------------------------------ routing */

  function parseHash() {
    var h = location.hash || '#/';
    var m = /^#\/saga\/([0-9a-fA-F]{24})$/.exec(h);
    if (m) return { view: 'saga', id: m[1].toLowerCase() };
    var q = {};
    var i = h.indexOf('?');
    if (i >= 0) {
      new URLSearchParams(h.slice(i + 1)).forEach(function (v, k) {
        if (FILTERS.indexOf(k) >= 0 && v) q[k] = v;
      });
    }
    return { view: 'list', filters: q };
  }

  function route() {
    if (!state.key) {
      /* Keep what the login or refusal view says (a hash change follows a lost session). */
      if (state.view !== 'view-login' && state.view !== 'view-denied') showLogin('');
      return;
    }
    var r = parseHash();
    startTimer();
    if (r.view === 'saga') {
      openSaga(r.id);
    } else {
      var first = state.view !== 'view-list';
      state.lastListHash = location.hash || '#/';
      show('view-list');
      state.filters = r.filters;
      fillFilterForm();
      loadCounts();
      loadList(true);
      if (first) {
        loadChart();
        $('main').focus({ preventScroll: true });
      }
    }
  }

  /* ------------------------------------------------------------------ counts */

  function loadCounts() {
    if (state.busy.counts) return;
    state.busy.counts = true;
    api('GET', '/v1/admin/counts').then(function (c) {
      renderCounts(c);
      $('counts-updated').textContent = 'updated ' + localTime(Date.now());
    }, function (e) {
      $('counts-updated').textContent = e.status === 503 ? 'Redis unavailable; retrying' : e.message;
    }).then(function () { state.busy.counts = false; });
  }

  function renderCounts(c) {
    var by = (c && c.by_status) || {};
    var total = 0;
    STATUSES.forEach(function (s) { total += by[s] || 0; });
    var bar = $('stage-bar');
    clear(bar);
    var summary = [];
    STATUSES.forEach(function (s) {
      var n = by[s] || 0;
      summary.push(label(s) + ' ' + n);
      if (!n) return;
      var seg = el('div', { class: 'seg st-' + s, title: label(s) + ': ' + n });
      seg.style.flexGrow = String(n);
      if (n / total >= 0.08) seg.appendChild(el('span', { text: String(n) }));
      bar.appendChild(seg);
    });
    if (!total) bar.appendChild(el('div', { class: 'seg empty', text: 'no sagas in the retention window' }));
    bar.setAttribute('aria-label', 'Sagas by stage: ' + summary.join(', '));

    var legend = $('stage-legend');
    var focused = document.activeElement && legend.contains(document.activeElement) ? document.activeElement.getAttribute('data-status') : null;
    clear(legend);
    STATUSES.forEach(function (s) {
      var active = state.filters.status === s;
      var b = el('button', { type: 'button', class: 'legend-item' + (active ? ' active' : ''), 'data-status': s,
        'aria-pressed': active ? 'true' : 'false', title: active ? 'Show every status' : 'Show only ' + label(s) }, [
        el('span', { class: 'swatch st-' + s, 'aria-hidden': 'true' }),
        el('span', { class: 'legend-name', text: label(s) }),
        el('span', { class: 'legend-count', text: String(by[s] || 0) })
      ]);
      b.addEventListener('click', function () {
        var f = copy(state.filters);
        if (f.status === s) delete f.status; else f.status = s;
        go(f);
      });
      legend.appendChild(el('li', null, [b]));
      if (focused === s) b.focus();
    });

    var tenants = Object.keys((c && c.by_tenant) || {});
    var chips = $('tenant-counts');
    clear(chips);
    tenants.forEach(function (t) {
      chips.appendChild(el('li', { class: 'chip' }, [el('span', { text: t }), el('strong', { text: String(c.by_tenant[t]) })]));
    });
    if (tenants.join(',') !== state.tenants.join(',')) {
      state.tenants = tenants;
      fillOptions($('f-tenant'), tenants, state.filters.tenant);
    }
  }

  /* ------------------------------------------------------------------ filters and list */

  function copy(o) { var r = {}; Object.keys(o).forEach(function (k) { r[k] = o[k]; }); return r; }

  function go(filters) {
    var q = new URLSearchParams();
    FILTERS.forEach(function (k) { if (filters[k]) q.set(k, filters[k]); });
    var h = '#/' + (q.toString() ? '?' + q.toString() : '');
    if (h === location.hash) route(); else location.hash = h;
  }

  function fillOptions(select, values, selected) {
    while (select.options.length > 1) select.remove(1);
    values.forEach(function (v) { select.appendChild(el('option', { value: v, text: label(v) })); });
    if (selected && values.indexOf(selected) < 0) select.appendChild(el('option', { value: selected, text: selected }));
    select.value = selected || '';
  }

  /* datetime-local values are local time; the API takes RFC 3339. */
  function toLocalInput(iso) {
    var t = isoMs(iso);
    if (!isFinite(t)) return '';
    var d = new Date(t);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fillFilterForm() {
    var f = state.filters;
    fillOptions($('f-status'), STATUSES, f.status);
    fillOptions($('f-type'), TYPES, f.type);
    fillOptions($('f-tenant'), state.tenants, f.tenant);
    $('f-order').value = f.order_id || '';
    $('f-since').value = toLocalInput(f.since);
    $('f-until').value = toLocalInput(f.until);
  }

  function readFilterForm() {
    var f = {};
    ['status', 'type', 'tenant'].forEach(function (k) {
      var v = $('f-' + k).value;
      if (v) f[k] = v;
    });
    var o = $('f-order').value.trim().toLowerCase();
    if (o) f.order_id = o;
    [['since', 'f-since'], ['until', 'f-until']].forEach(function (p) {
      var v = $(p[1]).value;
      if (v) {
        var t = new Date(v).getTime();
        if (isFinite(t)) f[p[0]] = isoSec(t);
      }
    });
    return f;
  }

  function listQuery(filters, limit, cursor) {
    var q = new URLSearchParams();
    FILTERS.forEach(function (k) { if (filters[k]) q.set(k, filters[k]); });
    q.set('limit', String(limit));
    if (cursor) q.set('cursor', cursor);
    return '/v1/admin/sagas?' + q.toString();
  }

  /* reset: a new query (first page, shown at once); else a refresh of the first page. */
  function loadList(reset) {
    if (state.busy.list && !reset) return;
    var token = (state.listToken || 0) + 1;
    state.listToken = token;
    state.busy.list = true;
    var filters = copy(state.filters);
    api('GET', listQuery(filters, PAGE, '')).then(function (page) {
      /* A refresh that crossed "Load more" is dropped: the operator's pages stay as they are. */
      if (token !== state.listToken || (!reset && (state.pages > 1 || state.busy.more))) return;
      state.items = page.items || [];
      state.next = page.next || '';
      state.pages = 1;
      $('list-error').textContent = '';
      renderRows(true);
      $('list-updated').textContent = 'updated ' + localTime(Date.now());
    }, function (e) {
      if (token !== state.listToken) return;
      $('list-error').textContent = e.status === 503 ? 'Redis is unavailable; retrying.' : e.message;
      if (reset) { state.items = []; state.next = ''; renderRows(true); }
    }).then(function () { if (token === state.listToken) state.busy.list = false; });
  }

  function loadMore() {
    if (!state.next || state.busy.more) return;
    state.busy.more = true;
    var btn = $('load-more');
    btn.disabled = true;
    var token = state.listToken;
    api('GET', listQuery(state.filters, PAGE, state.next)).then(function (page) {
      if (token !== state.listToken) return;
      var firstNew = state.items.length;
      state.items = state.items.concat(page.items || []);
      state.next = page.next || '';
      state.pages++;
      renderRows(false, firstNew);
    }, function (e) {
      $('list-error').textContent = e.message;
    }).then(function () {
      state.busy.more = false;
      btn.disabled = false;
    });
  }

  function renderRows(replace, from) {
    var body = $('sagas-body');
    if (replace) { clear(body); from = 0; }
    for (var i = from; i < state.items.length; i++) body.appendChild(row(state.items[i]));
    $('list-empty').hidden = state.items.length > 0;
    $('load-more').hidden = !state.next;
    $('list-count').textContent = state.items.length ? state.items.length + (state.next ? ' shown; more below' : ' shown') : '';
    if (!replace && from < state.items.length) {
      var link = body.rows[from] && body.rows[from].querySelector('a');
      if (link && document.activeElement === $('load-more') && !state.next) link.focus();
    }
  }

  function row(it) {
    var created = Number(it.created_ms);
    var href = '#/saga/' + it.saga_id;
    var tr = el('tr', { class: 'row st-row-' + it.status, 'data-saga': it.saga_id }, [
      el('td', null, [pill(it.status)]),
      el('td', { title: it.created_at || '', text: isFinite(created) ? age(created) : '' }),
      el('td', { text: label(String(it.type || '').replace(/^order_/, '')) }),
      el('td', { text: it.tenant || '' }),
      el('td', { text: it.dest || it.counterparty || '' }),
      el('td', { class: 'mono', title: it.order_id ? 'order ' + it.order_id : null, text: it.order_number || it.order_id || '' }),
      el('td', { class: 'num', text: it.attempts === null || it.attempts === undefined ? '' : String(it.attempts) }),
      el('td', { class: 'msg', title: it.message || '', text: it.message || '' }),
      el('td', { class: 'mono' }, [el('a', { href: href, 'aria-label': 'Saga ' + it.saga_id + ', ' + label(it.status), text: String(it.saga_id).slice(-8) })])
    ]);
    tr.addEventListener('click', function (ev) {
      if (ev.target.closest('a') || window.getSelection().toString()) return;
      location.hash = href;
    });
    return tr;
  }

  /* ------------------------------------------------------------------ chart */

  function loadChart() {
    if (state.busy.chart) return;
    state.busy.chart = true;
    var now = Date.now();
    var end = Math.floor(now / 60000) * 60000 + 60000; /* the end of the current minute */
    var start = end - CHART_MINUTES * 60000;
    var items = [];
    var pages = 0;
    function page(cursor) {
      return api('GET', listQuery({ since: isoSec(start) }, 200, cursor)).then(function (p) {
        items = items.concat(p.items || []);
        pages++;
        if (p.next && pages < CHART_MAX_PAGES) return page(p.next);
        return p.next || '';
      });
    }
    page('').then(function (more) {
      renderChart(items, start, end, !!more);
      $('chart-updated').textContent = 'updated ' + localTime(Date.now());
    }, function (e) {
      $('chart-updated').textContent = e.message;
    }).then(function () { state.busy.chart = false; });
  }

  function renderChart(items, start, end, truncated) {
    var n = CHART_MINUTES;
    var intake = [], done = [], failed = [];
    for (var i = 0; i < n; i++) { intake.push(0); done.push(0); failed.push(0); }
    items.forEach(function (it) {
      var c = Number(it.created_ms);
      var bi = Math.floor((c - start) / 60000);
      if (bi >= 0 && bi < n) intake[bi]++;
      if (FINAL[it.status]) {
        var u = isoMs(it.updated_at);
        var bu = Math.floor((u - start) / 60000);
        if (bu >= 0 && bu < n) {
          done[bu]++;
          if (it.status === 'error') failed[bu]++;
        }
      }
    });
    var max = 1;
    for (i = 0; i < n; i++) max = Math.max(max, intake[i], done[i]);
    var step = niceStep(max);
    var top = Math.ceil(max / step) * step;

    var W = 640, H = 220, L = 40, R = 10, T = 12, B = 28;
    var pw = W - L - R, ph = H - T - B, bw = pw / n;
    function y(v) { return T + ph - (v / top) * ph; }
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart-svg', role: 'img',
      'aria-labelledby': 'chart-title' });
    var ti = 0, td = 0, tf = 0;
    for (i = 0; i < n; i++) { ti += intake[i]; td += done[i]; tf += failed[i]; }
    root.appendChild(svg('title', { id: 'chart-title' }, 'Last ' + n + ' minutes: ' + ti + ' sagas accepted, ' + td +
      ' completed (' + tf + ' in error)'));

    for (var v = 0; v <= top; v += step) {
      root.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid-line' }));
      root.appendChild(svg('text', { x: L - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, String(v)));
    }
    for (i = 0; i < n; i++) {
      var x = L + i * bw;
      var t0 = start + i * 60000;
      var g = svg('g', { class: 'minute' });
      g.appendChild(svg('title', {}, localTime(t0).slice(0, 5) + ': ' + intake[i] + ' accepted, ' + done[i] +
        ' completed' + (failed[i] ? ' (' + failed[i] + ' error)' : '')));
      g.appendChild(svg('rect', { x: x, y: T, width: bw, height: ph, class: 'hover' }));
      if (intake[i]) {
        g.appendChild(svg('rect', { x: x + bw * 0.15, y: y(intake[i]), width: bw * 0.7, height: T + ph - y(intake[i]), class: 'bar-intake', rx: 1.5 }));
      }
      root.appendChild(g);
      if (i % 5 === 0 || i === n - 1) {
        root.appendChild(svg('text', { x: x + bw / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle' },
          i === n - 1 ? 'now' : localTime(t0).slice(0, 5)));
      }
    }
    function line(series, cls) {
      var pts = series.map(function (val, k) { return (L + k * bw + bw / 2).toFixed(1) + ',' + y(val).toFixed(1); });
      root.appendChild(svg('polyline', { points: pts.join(' '), class: cls, fill: 'none' }));
      series.forEach(function (val, k) {
        if (val) root.appendChild(svg('circle', { cx: L + k * bw + bw / 2, cy: y(val), r: 2.6, class: cls + '-dot' }));
      });
    }
    line(done, 'line-done');
    line(failed, 'line-failed');
    root.appendChild(svg('line', { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: 'axis-line' }));

    var box = $('chart');
    clear(box);
    box.appendChild(root);
    box.appendChild(el('ul', { class: 'chart-legend' }, [
      el('li', null, [el('span', { class: 'swatch intake', 'aria-hidden': 'true' }), 'accepted (' + ti + ')']),
      el('li', null, [el('span', { class: 'swatch done', 'aria-hidden': 'true' }), 'completed (' + td + ')']),
      el('li', null, [el('span', { class: 'swatch failed', 'aria-hidden': 'true' }), 'ended in error (' + tf + ')'])
    ]));
    $('chart-note').textContent = 'From the saga listing: sagas created in the last ' + n +
      ' minutes, by creation minute and, once final, by the minute they ended.' +
      (truncated ? ' Only the newest ' + items.length + ' are counted.' : '');
  }

  function niceStep(max) {
    var raw = max / 4;
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var m = raw / p;
    var s = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
    return Math.max(1, s * p);
  }

  /* ------------------------------------------------------------------ one saga */

  function openSaga(id) {
    var fresh = state.sagaId !== id || state.view !== 'view-saga';
    state.sagaId = id;
    show('view-saga');
    $('saga-back').setAttribute('href', state.lastListHash || '#/');
    if (fresh) {
      state.saga = null;
      $('saga-id').textContent = id;
      clear($('saga-status'));
      $('saga-status').textContent = '';
      $('saga-status').className = 'pill';
      ['timeline', 'logs', 'saga-summary', 'saga-request'].forEach(function (x) { clear($(x)); });
      $('saga-error').textContent = '';
      $('retry').hidden = true;
      $('main').focus({ preventScroll: true });
    }
    loadSaga(id);
  }

  function loadSaga(id) {
    clearTimeout(state.sagaTimer);
    state.sagaTimer = null;
    var token = (state.sagaToken || 0) + 1;
    state.sagaToken = token;
    api('GET', '/v1/admin/sagas/' + id).then(function (v) {
      if (token !== state.sagaToken || state.view !== 'view-saga') return;
      renderSaga(v);
      /* Follow a saga until it ends (faster just after a retry). */
      if (!FINAL[v.saga.status]) {
        state.sagaTimer = setTimeout(function () { if (live()) loadSaga(id); else schedule(id); }, state.retrying ? 700 : 1500);
      } else {
        state.retrying = false;
      }
    }, function (e) {
      if (token !== state.sagaToken) return;
      $('saga-error').textContent = e.status === 404 ? 'No such saga (it may have expired).' : e.message;
      if (e.status === 503 || e.status === 0) schedule(id);
    });
  }

  function schedule(id) {
    state.sagaTimer = setTimeout(function () { if (live()) loadSaga(id); else schedule(id); }, TICK_MS);
  }

  function renderSaga(v) {
    var s = v.saga || {};
    state.saga = s;
    $('saga-id').textContent = s.saga_id || state.sagaId;
    var st = $('saga-status');
    st.className = 'pill st-' + s.status;
    st.textContent = label(s.status);
    $('retry').hidden = s.status !== 'error';
    $('retry').disabled = false;

    var dl = $('saga-summary');
    clear(dl);
    function item(k, val, cls) {
      if (val === undefined || val === null || val === '') return;
      dl.appendChild(el('div', { class: 'kv' }, [el('dt', { text: k }), el('dd', { class: cls || null, text: String(val) })]));
    }
    item('Type', label(s.type));
    item('Tenant', (s.tenant || '') + (s.instance ? ' (' + s.instance + ')' : ''));
    item('Destination', s.dest || s.counterparty);
    item('Order number', s.order_number, 'mono');
    item('Order id', s.order_id, 'mono');
    item('Attempts', s.attempts);
    item('Created', s.created_at ? localTime(isoMs(s.created_at), true) : '');
    item('Updated', s.updated_at ? localTime(isoMs(s.updated_at), true) : '');
    if (s.status === 'error') item('Failed at', label(s.failed_from));
    item('Last message', s.message, 'msg-full');
    item('Request id', s.request_id, 'mono');

    renderTimeline(v.history || []);
    renderRequest(s);
    renderLogs(v.logs || []);
  }

  function renderTimeline(hist) {
    var ol = $('timeline');
    clear(ol);
    var first = hist.length ? isoMs(hist[0].date) : NaN;
    var prev = first;
    hist.forEach(function (h, i) {
      var t = isoMs(h.date);
      var li = el('li', { class: 'stage st-line-' + h.status + (i === hist.length - 1 ? ' last' : '') }, [
        el('span', { class: 'dot st-' + h.status, 'aria-hidden': 'true' }),
        el('div', { class: 'stage-body' }, [
          el('div', { class: 'stage-top' }, [
            el('strong', { class: 'stage-name', text: label(h.status) }),
            el('time', { datetime: h.date, title: h.date, text: localTime(t, true) }),
            i > 0 && isFinite(t) && isFinite(prev) ? el('span', { class: 'muted small', text: delta(t - prev) }) : null
          ]),
          h.message ? el('div', { class: 'stage-msg', text: h.message }) : null
        ])
      ]);
      prev = t;
      ol.appendChild(li);
    });
    if (!hist.length) ol.appendChild(el('li', { class: 'muted', text: 'No history recorded.' }));
  }

  function pretty(v) {
    if (typeof v === 'string') {
      try { return JSON.stringify(JSON.parse(v), null, 2); } catch (e) { return v; }
    }
    return JSON.stringify(v, null, 2);
  }

  function block(title, value, open) {
    if (value === undefined || value === null || value === '' ||
      (typeof value === 'object' && !Array.isArray(value) && !Object.keys(value).length)) return null;
    return el('details', { class: 'block', open: open ? true : null }, [
      el('summary', { text: title }),
      el('pre', { class: 'code', tabindex: '0', text: pretty(value) })
    ]);
  }

  function renderRequest(s) {
    var box = $('saga-request');
    clear(box);
    var parts = [
      block('Request as received from ' + (s.tenant || 'the tenant'), s.request, true),
      block('Answer given to the tenant', s.response, false),
      block('Mapped references', s.mapped, false),
      block('Status update', s.status_update, false)
    ].filter(Boolean);
    if (!parts.length) box.appendChild(el('p', { class: 'muted', text: 'Nothing stored.' }));
    parts.forEach(function (p) { box.appendChild(p); });
  }

  function headerLines(h) {
    if (Array.isArray(h)) return h.join('\n');
    if (typeof h === 'string') return h.replace(/\r\n/g, '\n').trim();
    return pretty(h);
  }

  function renderLogs(logs) {
    var box = $('logs');
    var openState = {};
    Array.prototype.forEach.call(box.querySelectorAll('details[data-k]'), function (d) { openState[d.getAttribute('data-k')] = d.open; });
    clear(box);
    if (!logs.length) { box.appendChild(el('p', { class: 'muted', text: 'No log entries for this saga.' })); return; }
    var lastAttempt = -1;
    logs.forEach(function (e, i) { if (e.outbound_request && e.outbound_request.method) lastAttempt = i; });
    logs.forEach(function (e, i) {
      var ob = e.outbound_request || {}, ib = e.inbound_request || {};
      var hasOut = !!ob.method;
      var detail = e.detail || {};
      var art = el('article', { class: 'log' + (hasOut ? ' attempt' : ''), 'data-log': String(i) }, [
        el('header', { class: 'log-head' }, [
          pill(e.status),
          el('strong', { text: e.title || label(e.status) }),
          el('time', { datetime: e.date, title: e.date, text: localTime(isoMs(e.date), true) }),
          e.severity && e.severity !== 'low' ? el('span', { class: 'sev', text: e.severity }) : null
        ]),
        detail.message ? el('p', { class: 'log-msg', text: detail.message }) : null
      ]);
      if (hasOut) {
        var key = (e._id || i) + ':';
        var isLast = i === lastAttempt;
        var outText = ob.method + ' ' + (ob.url || '') + '\n' + headerLines(ob.headers) +
          (ob.body !== undefined && ob.body !== null ? '\n\n' + pretty(ob.body) : '');
        var inText;
        if (ib.error) inText = 'error: ' + ib.error + (ib.elapsed_ms !== undefined ? '\n(after ' + ib.elapsed_ms + ' ms)' : '');
        else if (ib.status !== undefined) {
          inText = 'HTTP ' + ib.status + (ib.elapsed_ms !== undefined ? '  (' + ib.elapsed_ms + ' ms)' : '') +
            (ib.headers ? '\n' + headerLines(ib.headers).replace(/^HTTP\/[^\n]*\n?/, '') : '') +
            (ib.body !== undefined && ib.body !== null ? '\n\n' + pretty(ib.body) : '');
        } else inText = 'no answer recorded';
        var o = el('details', { class: 'block out', 'data-k': key + 'out', open: openState[key + 'out'] !== undefined ? openState[key + 'out'] : isLast }, [
          el('summary', { text: 'Outbound request: ' + ob.method + ' ' + (ob.url || '') }),
          el('pre', { class: 'code', tabindex: '0', text: outText })
        ]);
        var r = el('details', { class: 'block in' + (ib.error || (ib.status >= 400) ? ' bad' : ''), 'data-k': key + 'in', open: openState[key + 'in'] !== undefined ? openState[key + 'in'] : isLast }, [
          el('summary', { text: 'Response: ' + (ib.error ? 'transport error' : ib.status !== undefined ? 'HTTP ' + ib.status : '—') }),
          el('pre', { class: 'code', tabindex: '0', text: inText })
        ]);
        art.appendChild(el('div', { class: 'exchange' }, [o, r]));
      }
      box.appendChild(art);
    });
  }

  function retry() {
    var id = state.sagaId;
    var btn = $('retry');
    btn.disabled = true;
    $('saga-error').textContent = '';
    api('POST', '/v1/admin/sagas/' + id + '/retry').then(function (r) {
      toast('Retry requested for saga ' + id + (r && r.status ? ' (now ' + label(r.status) + ')' : ''));
      state.retrying = true;
      btn.hidden = true;
      loadSaga(id);
    }, function (e) {
      btn.disabled = false;
      $('saga-error').textContent = e.status === 409 ? e.message : 'Retry failed: ' + e.message;
      loadSaga(id);
    });
  }

  /* ------------------------------------------------------------------ start */

  function login(ev) {
    ev.preventDefault();
    var key = $('login-key').value.trim();
    if (!key) return;
    var btn = $('login-submit');
    btn.disabled = true;
    $('login-error').textContent = '';
    api('GET', '/v1/admin/counts', key).then(function () {
      state.key = key;
      try { sessionStorage.setItem(KEY_STORE, key); } catch (e) { /* the key lives in memory only */ }
      $('login-key').value = '';
      route();
    }, function (e) {
      $('login-key').value = '';
      if (e.status === 403) showDenied();
      else if (e.status === 401) showLogin('This key is not recognised.');
      else showLogin('Could not check the key: ' + e.message);
    }).then(function () { btn.disabled = false; });
  }

  function init() {
    try { state.key = sessionStorage.getItem(KEY_STORE); } catch (e) { state.key = null; }
    $('login-form').addEventListener('submit', login);
    $('denied-back').addEventListener('click', function () { showLogin(''); });
    $('logout').addEventListener('click', function () {
      forgetKey();
      location.hash = '#/';
      showLogin('Key forgotten.');
    });
    $('filters').addEventListener('submit', function (ev) { ev.preventDefault(); go(readFilterForm()); });
    $('f-clear').addEventListener('click', function () { go({}); });
    $('load-more').addEventListener('click', loadMore);
    $('retry').addEventListener('click', retry);
    $('live').addEventListener('change', function () { if (live()) onTick(); });
    $('skip').addEventListener('click', function (ev) { ev.preventDefault(); $('main').focus(); });
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', function () { if (live() && state.key) onTick(); });
    /* "/" jumps to the filters, as in most consoles (not while typing). */
    document.addEventListener('keydown', function (ev) {
      var t = ev.target;
      if (ev.key === '/' && state.view === 'view-list' && !/^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName) && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
        ev.preventDefault();
        $('f-status').focus();
      }
    });
    $('clock').textContent = localTime(Date.now());
    if (state.key) {
      /* A stored key is checked again: its scopes may have changed since. */
      api('GET', '/v1/admin/counts').then(function () { route(); }, function (e) {
        if (e.status !== 401 && e.status !== 403) route();
      });
    } else {
      showLogin('');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
