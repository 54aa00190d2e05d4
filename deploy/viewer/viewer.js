// viewer.js — the demo's viewer page. Reads the catalog (index.json) through
// the edge, fetches every model (.glb, .gltf) and the files a .gltf references
// (buffers, images) through the edge with fetch(), so that the response headers
// can be shown, hands the bytes to three.js's GLTFLoader, renders each model
// once into its tile, and shows per file the edge's X-Cache and Cache-Status.
// "fetch again" repeats every fetch: a cold edge's Miss becomes a Hit.
//
// The page is served through the edge from the catalog's own root (/viewer/),
// so it is same-origin with the assets and needs no CORS; ?edge=URL points it
// at another edge (its answers must then allow this page's origin and expose
// X-Cache and Cache-Status).
//
// For scripts (tests/e2e/test_viewer.py): window.meshcdnViewer holds the state
// ({round, index, models: [{path, state, error, drawn, files: [{path, status,
// xcache, cacheStatus, ...}]}]}); document.body.dataset.round is the round
// number and dataset.state 'running' or 'done'.
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

const params = new URLSearchParams(location.search);
let edgeParam = params.get('edge');
if (edgeParam && !edgeParam.endsWith('/')) edgeParam += '/';
const edgeRoot = new URL(edgeParam || '../', location.href);   // the page is /viewer/index.html
const sameOrigin = edgeRoot.origin === location.origin;
const CONCURRENCY = 4;           // models fetched at once, as a page with a few viewers would
const W = 400, H = 300;          // pixels of one rendering

const state = { round: 0, edge: edgeRoot.href, index: null, models: [], webglError: null };
window.meshcdnViewer = state;

const $ = (id) => document.getElementById(id);
const grid = $('grid'), againBtn = $('again');

function assetURL(path) { return new URL(path.replace(/^\/+/, ''), edgeRoot).href; }
function baseName(url) { return decodeURIComponent(new URL(url).pathname.split('/').pop()); }
function word(xcache) { return xcache ? xcache.split(' ')[0] : '-'; }   // "Hit from meshcdn" -> "Hit"

// One fetch through the edge: the bytes and the headers that say how the edge
// answered. cache: 'no-store' keeps the browser's own cache out of the way, so
// every fetch reaches the edge; browsers then add "Cache-Control: no-cache"
// unless the request has a Cache-Control, and the edge would honour it and
// revalidate with the origin (a RefreshHit at best). A directive that asks for
// nothing (no stale copy) keeps the edge answering as it would any new viewer.
// Only same-origin: a custom header makes a cross-origin fetch preflighted.
async function fetchFile(url) {
  const rec = { url, path: new URL(url).pathname, status: 0, bytes: 0, type: null, xcache: null,
                cacheStatus: null, age: null, ms: 0, error: null };
  const init = { cache: 'no-store' };
  if (sameOrigin) init.headers = { 'Cache-Control': 'max-stale=0' };
  const t0 = performance.now();
  let body = null;
  try {
    const resp = await fetch(url, init);
    rec.status = resp.status;
    rec.type = resp.headers.get('Content-Type');
    rec.xcache = resp.headers.get('X-Cache');
    rec.cacheStatus = resp.headers.get('Cache-Status');
    rec.age = resp.headers.get('Age');
    body = await resp.arrayBuffer();
    rec.bytes = body.byteLength;
    if (!resp.ok) { rec.error = `HTTP ${resp.status}`; body = null; }
  } catch (e) {
    rec.error = String(e && e.message || e);
  }
  // the network's time from Resource Timing when it has it: the wall clock
  // here also counts the time this thread spent rendering other models
  const timing = performance.getEntriesByName(url, 'resource').pop();
  rec.ms = Math.round(timing && timing.responseEnd > 0 ? timing.responseEnd - timing.startTime
                                                       : performance.now() - t0);
  return { rec, body };
}

// ---- rendering: one WebGL context for all tiles (browsers allow only a few)

let renderer;
function getRenderer() {
  if (renderer !== undefined) return renderer;
  try {
    const canvas = document.createElement('canvas');
    renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    renderer.setSize(W, H, false);
    renderer.setClearColor(0xeef0f3);
  } catch (e) {
    renderer = null;
    state.webglError = String(e && e.message || e);
  }
  return renderer;
}

function dispose(root) {
  root.traverse((o) => {
    if (o.geometry) o.geometry.dispose();
    for (const mat of [].concat(o.material || [])) {
      for (const v of Object.values(mat)) if (v && v.isTexture) v.dispose();
      mat.dispose();
    }
  });
}

// Render root framed in the tile's canvas; the share of pixels that differ
// from the background says that something was drawn.
function draw(root, canvas) {
  const r = getRenderer();
  if (!r) return 0;
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x8d8d8d, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 2.5);
  sun.position.set(3, 5, 4);
  scene.add(sun, root);
  const box = new THREE.Box3().setFromObject(root);
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-3);
  const fov = 35;
  const camera = new THREE.PerspectiveCamera(fov, W / H, radius / 100, radius * 100);
  camera.position.copy(center).addScaledVector(new THREE.Vector3(1, 0.7, 1.4).normalize(),
                                               1.15 * radius / Math.sin(THREE.MathUtils.degToRad(fov / 2)));
  camera.lookAt(center);
  r.render(scene, camera);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(r.domElement, 0, 0, canvas.width, canvas.height);
  dispose(root);
  const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let differ = 0;
  for (let i = 0; i < px.length; i += 4)
    if (Math.abs(px[i] - px[0]) + Math.abs(px[i + 1] - px[1]) + Math.abs(px[i + 2] - px[2]) > 30) differ++;
  return differ / (px.length / 4);
}

// ---- one model: fetch it and what it references, parse, draw

async function loadModel(m) {
  m.state = 'loading'; m.error = null; m.drawn = 0; m.files = [];
  show(m);
  const blobs = new Map();
  try {
    const main = await fetchFile(assetURL(m.path));
    m.files.push(main.rec);
    if (!main.body) throw new Error(`${baseName(main.rec.url)}: ${main.rec.error}`);
    if (/\.gltf$/i.test(m.path)) {
      // a viewer's order: the .gltf first, then its buffers and images
      const json = JSON.parse(new TextDecoder().decode(main.body));
      const uris = [...(json.buffers || []), ...(json.images || [])]
        .map((x) => x.uri).filter((u) => u && !u.startsWith('data:'));
      const deps = await Promise.all(uris.map((u) => fetchFile(new URL(u, main.rec.url).href)));
      for (const d of deps) {
        m.files.push(d.rec);
        if (!d.body) throw new Error(`${baseName(d.rec.url)}: ${d.rec.error}`);
        blobs.set(d.rec.url, URL.createObjectURL(new Blob([d.body], { type: d.rec.type || '' })));
      }
    }
    show(m);
    // the loader asks for the references by URL: hand it the bytes fetched above
    const manager = new THREE.LoadingManager();
    manager.setURLModifier((u) => {
      try { return blobs.get(new URL(u, main.rec.url).href) || u; } catch { return u; }
    });
    const gltf = await new GLTFLoader(manager).parseAsync(main.body, new URL('.', main.rec.url).href);
    m.drawn = draw(gltf.scene, m.canvas);
    m.state = 'loaded';
  } catch (e) {
    m.state = 'error';
    m.error = String(e && e.message || e);
  } finally {
    for (const b of blobs.values()) URL.revokeObjectURL(b);
  }
  for (const f of m.files) (m.history[f.path] ||= []).push(word(f.xcache));
  show(m);
}

// ---- the page

function el(tag, props = {}, ...kids) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
}

function tile(m) {
  m.canvas = el('canvas', { width: W, height: H });
  m.stateEl = el('span', { className: 'state' });
  m.table = el('table');
  m.el = el('section', { className: 'tile' }, m.canvas, el('h2', { textContent: m.path }), m.stateEl, m.table);
  m.el.dataset.path = m.path;
  grid.append(m.el);
}

function show(m) {
  const drawnNote = m.state === 'loaded' && !m.drawn
    ? (state.webglError ? ' (not drawn: no WebGL here)' : ' (nothing drawn)') : '';
  m.stateEl.textContent = m.state + (m.error ? `: ${m.error}` : '') + drawnNote;
  m.stateEl.className = `state ${m.state}`;
  m.el.dataset.state = m.state;
  m.table.replaceChildren(...m.files.map((f) => {
    const past = [...(m.history[f.path] || [])];
    if (m.state === 'loading') past.push(word(f.xcache));   // this round's is not in the history yet
    const xc = el('td', { className: word(f.xcache) });
    xc.textContent = past.slice(-3).join(' → ');
    const row = el('tr', {},
      el('td', { textContent: baseName(f.url) }),
      el('td', { textContent: f.error && !f.bytes ? f.error : `${(f.bytes / 1024).toFixed(0)} KiB` }),
      xc,
      el('td', { className: 'cs', textContent: f.cacheStatus || '(no Cache-Status)' }),
      el('td', { textContent: `${f.ms} ms` }));
    row.dataset.xcache = f.xcache || '';
    row.dataset.cacheStatus = f.cacheStatus || '';
    return row;
  }));
}

async function pool(items, n, fn) {
  let next = 0;
  const worker = async () => { while (next < items.length) await fn(items[next++]); };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

async function round() {
  state.round++;
  performance.clearResourceTimings();
  document.body.dataset.state = 'running';
  document.body.dataset.round = String(state.round);
  againBtn.disabled = true;
  $('summary').textContent = `round ${state.round}: fetching…`;
  const t0 = performance.now();
  const idx = await fetchFile(assetURL('/index.json'));
  state.index = idx.rec;
  $('index-status').textContent = idx.body
    ? `${word(idx.rec.xcache)} · ${idx.rec.cacheStatus || '(no Cache-Status)'}` : `error: ${idx.rec.error}`;
  if (idx.body && state.round === 1) {
    try {
      const cat = JSON.parse(new TextDecoder().decode(idx.body));
      state.models = (cat.objects || []).filter((o) => /\.(glb|gltf)$/i.test(o.path))
        .map((o) => ({ path: o.path, size: o.size, history: {}, files: [] }));
      state.models.forEach(tile);
    } catch (e) {
      $('index-status').textContent = `error: index.json: ${e.message}`;
    }
  }
  await pool(state.models, CONCURRENCY, loadModel);
  const files = state.models.flatMap((m) => m.files);
  const loaded = state.models.filter((m) => m.state === 'loaded').length;
  const hits = files.filter((f) => /Hit/.test(f.xcache || '')).length;
  $('summary').textContent = `round ${state.round}: ${loaded} of ${state.models.length} models loaded, ` +
    `${hits} of ${files.length} files were hits at the edge, ${Math.round(performance.now() - t0)} ms`;
  againBtn.disabled = false;
  document.body.dataset.state = 'done';
}

performance.setResourceTimingBufferSize(4096);
$('edge').textContent = edgeRoot.href;
$('index-url').textContent = assetURL('/index.json');
againBtn.addEventListener('click', () => round());
round();
