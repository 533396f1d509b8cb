// Sextant web console: plain DOM, no framework. Untrusted text (payloads, chunk text, answers,
// error messages) reaches the page only through textContent / text nodes, never parsed as HTML.

const KEY_STORE = 'sextant.apiKey';
const $ = (id) => document.getElementById(id);

const state = { name: null, info: null, page: 0, next: null };

// --- DOM helpers -------------------------------------------------------------------------------

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function clear(node) {
  node.replaceChildren();
  return node;
}

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

function bytes(n) {
  if (typeof n !== 'number') return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

const fmt = (s) => (typeof s === 'number' ? s.toFixed(4) : String(s));

// --- API ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e && e.message ? e.message : `HTTP ${status}`);
    this.status = status;
    this.code = e && e.code;
    this.field = e && e.field;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

const coll = (suffix = '') => `/collections/${encodeURIComponent(state.name)}${suffix}`;

/** Runs an action, showing its error (with the field at fault) instead of throwing. */
async function guarded(button, fn) {
  showError('');
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (e) {
    const field = e.field ? ` (field: ${e.field})` : '';
    const code = e.code ? `${e.code}: ` : '';
    showError(`${code}${e.message}${field}`);
  } finally {
    if (button) button.disabled = false;
  }
}

// --- Scope: filter and tenant shared by every panel --------------------------------------------

function readJson(id, what) {
  const text = $(id).value.trim();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw Object.assign(new Error(`${what} is not valid JSON: ${e.message}`), { field: id });
  }
}

function tenantValue() {
  const raw = $('tenant').value.trim();
  if (!raw) return undefined;
  const schema = state.info && state.info.schema;
  const key = schema && schema.tenant_key;
  const idx = key && (schema.payload_indexes || []).find((p) => p.key === key);
  return idx && idx.type === 'integer' && /^-?\d+$/.test(raw) ? Number(raw) : raw;
}

/** filter, tenant, all_tenants: the fields every request below accepts. */
function scope() {
  const s = {};
  const filter = readJson('filter', 'The filter');
  if (filter !== undefined) s.filter = filter;
  const tenant = tenantValue();
  if (tenant !== undefined) s.tenant = tenant;
  if ($('all-tenants').checked) s.all_tenants = true;
  return s;
}

function num(id) {
  const v = $(id).value.trim();
  return v === '' ? undefined : Number(v);
}

// --- Collections -------------------------------------------------------------------------------

async function loadCollections() {
  const list = clear($('collection-list'));
  const data = await api('GET', '/collections');
  const aliases = data.aliases || {};
  $('no-collections').hidden = data.collections.length > 0;
  for (const name of data.collections) {
    const names = Object.keys(aliases).filter((a) => aliases[a] === name);
    const b = el('button', {
      type: 'button', class: 'link', 'data-testid': 'collection', 'data-name': name,
      'aria-current': name === state.name ? 'true' : null,
      onclick: () => guarded(null, () => selectCollection(name)),
    }, name);
    list.append(el('li', {}, b, names.length ? el('small', {}, ` aka ${names.join(', ')}`) : null));
  }
  if (state.name && !data.collections.includes(state.name)) $('detail').hidden = true;
}

const isDocuments = (info) => Boolean(info && info.schema && info.schema.documents);

function describeSpaces(schema) {
  const dense = (schema.spaces || []).map((s) => {
    const i = s.index || {};
    const idx = i.type === 'hnsw' ? ` hnsw (m ${i.m}, ef_construction ${i.ef_construction})` : i.type ? ` ${i.type}` : '';
    return `${s.name}: ${s.dim}-d ${s.metric}${idx}${s.model ? ', model-backed' : ''}`;
  });
  const sparse = (schema.sparse_spaces || []).map((s) => `${s.name}: sparse ${(s.kind && s.kind.type) || ''}`.trim());
  return [...dense, ...sparse].join('; ');
}

async function selectCollection(name) {
  const info = await api('GET', `/collections/${encodeURIComponent(name)}`);
  state.name = name;
  state.info = info;
  state.page = 0;
  state.next = null;
  for (const b of document.querySelectorAll('#collection-list [data-name]')) {
    if (b.dataset.name === name) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }
  $('collection-name').textContent = name;
  const schema = info.schema || {};
  const docs = isDocuments(info);
  const rows = [
    ['points', info.points], ['deleted', info.deleted], ['unflushed', info.unflushed_points],
    ['segments', (info.segments || []).length], ['memory', bytes(info.memory_bytes)],
    ['disk', bytes(info.disk_bytes)], ['WAL', bytes(info.wal_bytes)],
    ['spaces', describeSpaces(schema)],
    ['payload indexes', (schema.payload_indexes || []).map((p) => `${p.key}: ${p.type}`).join(', ') || 'none'],
    ['tenant key', schema.tenant_key || 'none (single tenant)'],
    ['document collection', docs ? 'yes (text query and ask)' : 'no (vector query)'],
  ];
  if (info.background_error) rows.push(['background error', info.background_error]);
  const dl = clear($('collection-info'));
  for (const [k, v] of rows) dl.append(el('dt', {}, k), el('dd', { 'data-key': k }, String(v ?? '–')));
  $('text-form').hidden = !docs;
  $('vector-form').hidden = docs;
  $('tab-ask').hidden = !docs;
  if (!docs && $('tab-ask').getAttribute('aria-selected') === 'true') selectTab('browse');
  clear($('browse-rows'));
  clear($('results'));
  clear($('ask-passages'));
  $('ask-answer').hidden = true;
  $('ask-summary').textContent = '';
  $('browse-count').textContent = '';
  $('browse-next').disabled = true;
  $('detail').hidden = false;
}

// --- Tabs --------------------------------------------------------------------------------------

const TABS = ['browse', 'query', 'ask'];

function selectTab(which) {
  for (const t of TABS) {
    const on = t === which;
    $(`tab-${t}`).setAttribute('aria-selected', String(on));
    $(`tab-${t}`).tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
  }
}

function tabKeys(ev) {
  const visible = TABS.filter((t) => !$(`tab-${t}`).hidden);
  const i = visible.findIndex((t) => `tab-${t}` === ev.target.id);
  const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
  if (i < 0 || !step) return;
  const next = visible[(i + step + visible.length) % visible.length];
  selectTab(next);
  $(`tab-${next}`).focus();
  ev.preventDefault();
}

// --- Browse ------------------------------------------------------------------------------------

async function browse(offset, pageNo) {
  const body = { ...scope(), limit: num('browse-limit') || 20 };
  if (offset) body.offset = offset;
  const page = await api('POST', coll('/points/scroll'), body);
  const rows = clear($('browse-rows'));
  for (const p of page.points) {
    rows.append(el('tr', { 'data-testid': 'point-row', 'data-id': JSON.stringify(p.id) },
      el('td', { class: 'id' }, JSON.stringify(p.id)),
      el('td', {}, el('code', {}, JSON.stringify(p.payload ?? null)))));
  }
  state.page = pageNo;
  state.next = page.next_offset || null;
  $('browse-next').disabled = !state.next;
  $('browse-count').textContent = `page ${pageNo}: ${page.points.length} point(s)${state.next ? '' : ', last page'}`;
}

// --- Highlighting ------------------------------------------------------------------------------

// Words not worth a highlight (display only: retrieval does its own analysis).
const STOP = new Set(('a an and are as at be by do does for from how in is it of on or that the this '
  + 'to was were what when where which who why with').split(' '));

/** Query terms as regex sources; a word matches when it starts with a term's (crudely stemmed) root. */
function terms(query) {
  const words = (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [])
    .filter((w) => w.length > 1 && !STOP.has(w));
  const roots = new Set(words.map((w) => (w.length > 4 ? w.replace(/(ing|ed|es|s|ly)$/u, '') : w)));
  return [...roots].sort((a, b) => b.length - a.length)
    .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** Text with every matching word wrapped in <mark>, as DOM nodes (never HTML). */
function highlighted(text, query) {
  const frag = document.createDocumentFragment();
  const t = terms(query);
  if (!t.length) { frag.append(text); return frag; }
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${t.join('|')})[\\p{L}\\p{N}]*`, 'giu');
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    frag.append(el('mark', {}, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

/** "Title — source § section, p. N, bytes a–b" from a chunk payload or an ask passage. */
function citation(p) {
  const parts = [];
  if (p.title) parts.push(p.title);
  if (p.source && p.source !== p.title) parts.push(p.source);
  if (p.section) parts.push(`§ ${p.section}`);
  if (p.page !== undefined && p.page !== null) parts.push(`p. ${p.page}`);
  if (p.start !== undefined && p.end !== undefined) parts.push(`bytes ${p.start}–${p.end}`);
  if (p.doc_id !== undefined) parts.push(`doc ${p.doc_id}`);
  return parts.join(' · ');
}

// --- Query -------------------------------------------------------------------------------------

async function textQuery() {
  const text = $('query-text').value;
  const body = { ...scope(), text, mode: $('query-mode').value, k: num('query-k') };
  const fusion = $('query-fusion').value;
  if (fusion) body.fusion = fusion;
  const mmr = num('query-mmr');
  if (mmr !== undefined) body.mmr = mmr;
  const group = num('query-group');
  if (group !== undefined) body.group_size = group;
  if ($('query-rerank').checked) body.rerank = true;
  const out = clear($('results'));
  const data = await api('POST', coll('/query'), body);
  if (!data.documents.length) out.append(el('li', { class: 'empty' }, 'No matches.'));
  for (const d of data.documents) {
    const chunks = el('ol', { class: 'chunks' });
    for (const c of d.chunks) {
      const p = c.payload || {};
      const sources = Object.entries(c.sources || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
      chunks.append(el('li', { 'data-testid': 'chunk', 'data-id': JSON.stringify(c.id) },
        el('div', { class: 'meta' }, `chunk ${JSON.stringify(c.id)} · score ${fmt(c.score)}`,
          sources ? ` · ${sources}` : ''),
        el('p', { class: 'text', 'data-testid': 'chunk-text' }, highlighted(String(p.text ?? ''), text)),
        el('div', { class: 'cite', 'data-testid': 'citation' }, citation(p))));
    }
    out.append(el('li', { 'data-testid': 'document', 'data-doc': String(d.doc_id) },
      el('div', { class: 'doc' }, el('strong', {}, String(d.doc_id)), ` · score ${fmt(d.score)}`),
      chunks));
  }
}

async function vectorQuery() {
  const vector = readJson('vector-input', 'The vector');
  if (!Array.isArray(vector)) throw Object.assign(new Error('The vector must be a JSON array of numbers'), { field: 'vector' });
  const body = { ...scope(), vector, k: num('vector-k') || 10, with_payload: true };
  const ef = num('vector-ef');
  if (ef !== undefined) body.ef = ef;
  const out = clear($('results'));
  const data = await api('POST', coll('/search'), body);
  if (!data.hits.length) out.append(el('li', { class: 'empty' }, 'No matches.'));
  for (const h of data.hits) {
    out.append(el('li', { 'data-testid': 'hit', 'data-id': JSON.stringify(h.id) },
      el('div', { class: 'meta' }, el('strong', {}, JSON.stringify(h.id)), ` · score ${fmt(h.score)}`),
      h.payload === undefined ? null : el('code', {}, JSON.stringify(h.payload))));
  }
}

// --- Ask ---------------------------------------------------------------------------------------

async function ask() {
  const question = $('ask-question').value;
  const body = { ...scope(), question, mode: $('ask-mode').value, k: num('ask-k') };
  const budget = num('ask-budget');
  if (budget !== undefined) body.budget = budget;
  const answer = clear($('ask-answer'));
  const out = clear($('ask-passages'));
  answer.hidden = true;
  $('ask-summary').textContent = '';
  const data = await api('POST', coll('/ask'), body);
  answer.append(data.answer
    ? el('p', {}, data.answer)
    : el('p', { class: 'muted' }, 'No answer generated (no generator configured); the cited context a model would receive is below.'));
  answer.hidden = false;
  const ctx = data.context || { passages: [] };
  $('ask-summary').textContent = `${ctx.passages.length} passage(s), ${ctx.tokens ?? '?'} of ${ctx.budget ?? '?'} tokens${ctx.omitted ? `, ${ctx.omitted} omitted` : ''}`;
  for (const p of ctx.passages) {
    out.append(el('li', { 'data-testid': 'passage', 'data-citation': String(p.citation) },
      el('div', { class: 'meta' }, el('strong', { class: 'cnum' }, `[${p.citation}]`),
        ` score ${fmt(p.score)} · ${p.tokens} tokens${p.truncated ? ' (truncated)' : ''}`),
      el('p', { class: 'text' }, highlighted(String(p.text ?? ''), question)),
      el('div', { class: 'cite', 'data-testid': 'citation' }, citation(p))));
  }
}

// --- Wiring ------------------------------------------------------------------------------------

function onSubmit(id, button, fn) {
  $(id).addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded($(button), fn);
  });
}

function init() {
  $('api-key').value = sessionStorage.getItem(KEY_STORE) || '';
  onSubmit('key-form', 'key-save', async () => {
    const k = $('api-key').value.trim();
    if (k) sessionStorage.setItem(KEY_STORE, k); else sessionStorage.removeItem(KEY_STORE);
    await loadCollections();
  });
  $('key-clear').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    $('api-key').value = '';
    guarded(null, loadCollections);
  });
  $('refresh').addEventListener('click', () => guarded($('refresh'), async () => {
    await loadCollections();
    if (state.name) await selectCollection(state.name);
  }));
  for (const t of TABS) {
    $(`tab-${t}`).addEventListener('click', () => selectTab(t));
    $(`tab-${t}`).addEventListener('keydown', tabKeys);
  }
  onSubmit('browse-form', 'browse-run', () => browse(null, 1));
  // Not disabled by guarded(): browse() enables it only when there is a next page.
  $('browse-next').addEventListener('click', () => guarded(null, () => browse(state.next, state.page + 1)));
  onSubmit('text-form', 'query-run', textQuery);
  onSubmit('vector-form', 'vector-run', vectorQuery);
  onSubmit('ask-form', 'ask-run', ask);
  selectTab('browse');
  document.body.dataset.ready = 'true';
  guarded(null, loadCollections);
}

init();
