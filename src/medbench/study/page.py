"""The reading kit's one page (``index.html``): offline, no server, no network.

The page holds the blinded manifest (:func:`medbench.study.kit.blinded_manifest`) and
loads each trial's image file as a ``<script>`` (the one kind of local file a page opened
from ``file://`` may load and read pixels from), decompresses it
(``DecompressionStream``) and draws every pane into a canvas through a window (centre,
width) on the stored values, so deep images are windowed on their true values and never
pre-reduced to 8 bits:

- **1:1**: one image pixel per *device* pixel (the canvas is sized by
  ``devicePixelRatio``); ``Z`` steps 1:1 → 2:1 → 4:1 (nearest neighbour) → fit → 1:1.
  The panes of a trial scroll together.
- **Window/level**: drag on an image (right–left: width, up–down: level), ``R`` resets it
  to the trial's default (the original's 0.5–99.5th percentiles, the same for every pane
  of a trial and every trial of one image, so the window tells nothing).
- **Answers by keyboard**: ← / 1 left, → / 2 right (2afc, revealed); 1–5 (rating). A key
  counts only once the trial is drawn and 300 ms have passed (no double answers).
- **Progress and pause/resume**: every answer is saved at once in ``localStorage`` under
  the kit id, so closing the tab loses nothing; reopening offers to continue. The
  reader's name or code is asked once.
- **Answers file**: ``answers-<kit>-<reader>.json`` (a download, at any time: ``D``; and
  at the end), with the kit id, every answer, its time and the window and zoom it was
  given under, and an FNV-1a digest of them so an edited or damaged file is caught.
"""

from __future__ import annotations

import html
import json

#: FNV-1a (32 bit) of the answers' canonical JSON: written by the page, checked by
#: :mod:`medbench.study.answers` (a check against accidents, not against forgery).
DIGEST = "fnv1a32"

_CSS = """
html,body{margin:0;height:100%;background:#111;color:#ddd;font:15px system-ui,sans-serif}
.screen{max-width:46em;margin:3em auto;padding:0 1em;line-height:1.45}
button{font:inherit;padding:.3em .8em;margin:.2em .3em .2em 0;background:#333;color:#eee;
border:1px solid #666;border-radius:3px;cursor:pointer}button:hover{background:#444}
input{font:inherit;padding:.3em;background:#222;color:#eee;border:1px solid #666}
kbd{border:1px solid #777;border-radius:3px;padding:0 .3em;background:#222}
#reading{display:flex;flex-direction:column;height:100%}
header{display:flex;flex-wrap:wrap;gap:.2em 1.2em;align-items:center;padding:.3em .6em;
background:#1c1c1c;border-bottom:1px solid #333;font-size:.9em}
#question{font-weight:600;color:#fff;font-size:1.05em}
#bar{flex:1 1 8em;height:.5em;background:#333;min-width:6em}#bar div{height:100%;background:#6a8}
#panes{flex:1;display:grid;gap:4px;padding:4px;min-height:0}
#panes.two{grid-template-columns:1fr 1fr}#panes.one{grid-template-columns:1fr}
#panes.three{grid-template-columns:1fr 1fr;grid-template-rows:1fr 1fr}
#panes.three .pane:first-child{grid-column:1 / span 2}
.pane{position:relative;overflow:auto;background:#000;min-height:0}
.pane canvas{display:block;margin:auto;cursor:crosshair}
.label{position:sticky;top:0;left:0;z-index:1;display:inline-block;background:#000a;
padding:.1em .5em;font-size:.85em;color:#ccc}
footer{padding:.25em .6em;font-size:.85em;color:#aaa;background:#1c1c1c}
#error{color:#fca;background:#402;padding:1em;margin:1em;border:1px solid #a44}
[hidden]{display:none!important}
"""

_JS = r"""
"use strict";
const STORE = "medbench-study:" + KIT.kit_id;
const PAIRED = KIT.protocol !== "rating";
const $ = id => document.getElementById(id);
let state = restore();
let current = null, shownAt = 0, zoomStep = 0, win = null, drag = null, syncing = false;
const ZOOMS = [1, 2, 4, "fit"];
const waiting = {}, cache = {};

function restore() {
  try { return JSON.parse(localStorage.getItem(STORE)) || fresh(); } catch (e) { return fresh(); }
}
function fresh() { return {reader: "", answers: [], started: null}; }
function save() { localStorage.setItem(STORE, JSON.stringify(state)); }

window.medbenchKitPut = function (token, data) {
  const w = waiting[token]; if (w) { delete waiting[token]; w.resolve(data); }
};

function load(trial) {
  if (cache[trial.token]) return cache[trial.token];
  const promise = new Promise((resolve, reject) => {
    waiting[trial.token] = {resolve, reject};
    const s = document.createElement("script");
    s.src = trial.file;
    s.onerror = () => reject(new Error("The image file " + trial.file + " of trial " +
      trial.id + " is missing from this kit folder. Copy the whole kit folder again " +
      "(index.html with its images/ folder) and reopen index.html; your answers so far " +
      "are kept."));
    document.head.appendChild(s);
  }).then(data => decode(data, trial));
  cache[trial.token] = promise;
  for (const t of Object.keys(cache)) if (t !== trial.token && Object.keys(cache).length > 3)
    delete cache[t];
  return promise;
}

async function decode(data, trial) {
  if (typeof DecompressionStream === "undefined")
    throw new Error("This browser cannot read the kit (it has no DecompressionStream): " +
                    "open index.html in a current Chrome, Edge, Firefox or Safari.");
  const text = atob(data), bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  const n = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] * 16777216);
  const stream = new Blob([bytes.subarray(4, 4 + n)]).stream()
    .pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const size = trial.height * trial.width;
  if (raw.length !== 2 * size * trial.panes)
    throw new Error("The image file " + trial.file + " is damaged (it holds " +
      raw.length + " bytes, the trial needs " + 2 * size * trial.panes + "). Copy the " +
      "kit folder again; your answers so far are kept.");
  const panes = [];
  for (let p = 0; p < trial.panes; p++) {  // low bytes, high bytes of row differences
    const lo = raw.subarray(2 * p * size, (2 * p + 1) * size);
    const hi = raw.subarray((2 * p + 1) * size, (2 * p + 2) * size);
    const values = new Uint16Array(size);
    for (let r = 0, i = 0; r < trial.height; r++) {
      let acc = 0;
      for (let c = 0; c < trial.width; c++, i++) {
        acc = (acc + (lo[i] | (hi[i] << 8))) & 0xffff;
        values[i] = acc;
      }
    }
    panes.push(values);
  }
  return panes;
}

function fail(err) {
  $("error").textContent = String(err && err.message || err);
  $("error").hidden = false;
}

function labels(n) {
  if (n === 1) return [""];
  if (n === 2) return ["Left", "Right"];
  return ["Original", "Left", "Right"];
}

function draw() {
  if (!current) return;
  const peak = Math.pow(2, current.trial.bit_depth) - 1;
  const low = win[0] - win[1] / 2, scale = 255 / Math.max(1, win[1]);
  const lut = new Uint8ClampedArray(peak + 1);
  for (let v = 0; v <= peak; v++) lut[v] = (v - low) * scale;
  for (const [i, canvas] of current.canvases.entries()) {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(canvas.width, canvas.height);
    const src = current.panes[i], out = img.data;
    for (let k = 0, j = 0; k < src.length; k++, j += 4) {
      const g = lut[Math.min(src[k], peak)];
      out[j] = out[j + 1] = out[j + 2] = g; out[j + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  $("wl").textContent = "window " + Math.round(win[1]) + " / level " + Math.round(win[0]);
  sizeCanvases();
}

function sizeCanvases() {
  if (!current) return;
  const zoom = ZOOMS[zoomStep], dpr = window.devicePixelRatio || 1;
  for (const canvas of current.canvases) {
    let f = zoom === "fit" ? 0 : zoom / dpr;
    if (zoom === "fit") {
      const box = canvas.parentElement;
      f = Math.min((box.clientWidth - 2) / canvas.width, (box.clientHeight - 24) / canvas.height);
    }
    canvas.style.width = canvas.width * f + "px";
    canvas.style.height = canvas.height * f + "px";
    canvas.style.imageRendering = zoom === "fit" ? "auto" : "pixelated";
  }
  $("zoom").textContent = zoom === "fit" ? "zoom: fit (reduced)" :
    "zoom " + zoom + ":1 (image pixels to screen pixels)";
}

async function show(index) {
  const trial = KIT.trials[index];
  $("progress").textContent = "Trial " + (index + 1) + " of " + KIT.trials.length;
  document.body.dataset.trial = "";
  $("bar").firstElementChild.style.width = (100 * index / KIT.trials.length) + "%";
  current = null;
  const box = $("panes");
  box.className = ["", "one", "two", "three"][trial.panes];
  box.replaceChildren();
  let panes;
  try { panes = await load(trial); } catch (err) { fail(err); return; }
  if (index + 1 < KIT.trials.length) load(KIT.trials[index + 1]).catch(() => {});
  const canvases = labels(trial.panes).map(text => {
    const pane = document.createElement("div"), canvas = document.createElement("canvas");
    pane.className = "pane";
    if (text) { const l = document.createElement("span"); l.className = "label";
                l.textContent = text; pane.appendChild(l); }
    canvas.width = trial.width; canvas.height = trial.height;
    pane.appendChild(canvas); box.appendChild(pane);
    pane.addEventListener("scroll", () => linkScroll(pane));
    canvas.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY, win.slice()];
                                                e.preventDefault(); });
    return canvas;
  });
  win = trial.window.slice();
  current = {trial, index, panes, canvases};
  draw();
  shownAt = performance.now();
  document.body.dataset.trial = trial.id;  // drawn: what a scripted check waits for
}

function linkScroll(from) {
  if (syncing) return;
  syncing = true;
  for (const pane of document.querySelectorAll(".pane"))
    if (pane !== from) { pane.scrollLeft = from.scrollLeft; pane.scrollTop = from.scrollTop; }
  syncing = false;
}

window.addEventListener("mousemove", e => {
  if (!drag || !current) return;
  const range = Math.pow(2, current.trial.bit_depth) / 512;
  win = [drag[2][0] - (e.clientY - drag[1]) * range,
         Math.max(1, drag[2][1] + (e.clientX - drag[0]) * range)];
  draw();
});
window.addEventListener("mouseup", () => { drag = null; });
window.addEventListener("resize", sizeCanvases);

function answer(value) {
  if (!current || performance.now() - shownAt < 300) return;
  const trial = current.trial;
  state.answers.push({trial: trial.id, answer: value,
                      ms: Math.round(performance.now() - shownAt),
                      at: new Date().toISOString(),
                      window: [Math.round(win[0]), Math.round(win[1])],
                      zoom: String(ZOOMS[zoomStep])});
  save();
  next();
}

function next() {
  const index = state.answers.length;
  if (index >= KIT.trials.length) { finish(); return; }
  show(index);
}

function finish() {
  current = null;
  document.body.dataset.trial = "done";
  $("reading").hidden = true; $("done").hidden = false;
  $("bar").firstElementChild.style.width = "100%";
}

function fnv1a(text) {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) { h ^= b; h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(16).padStart(8, "0");
}

function answersDocument() {
  return {format: "medbench-study-answers", version: 1, kit_id: KIT.kit_id,
          protocol: KIT.protocol, reader: state.reader, started: state.started,
          saved: new Date().toISOString(), n_trials: KIT.trials.length,
          complete: state.answers.length === KIT.trials.length,
          screen: [screen.width, screen.height, window.devicePixelRatio || 1],
          answers: state.answers,
          digest: fnv1a(JSON.stringify([KIT.kit_id, state.reader, state.answers]))};
}

function download() {
  const blob = new Blob([JSON.stringify(answersDocument(), null, 1)],
                        {type: "application/json"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "answers-" + KIT.kit_id + "-" +
    (state.reader.replace(/[^A-Za-z0-9_-]+/g, "_") || "reader") + ".json";
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

function begin() {
  if (!state.reader) {
    const name = $("reader").value.trim();
    if (!name) { $("reader").focus(); return; }
    state.reader = name; state.started = new Date().toISOString(); save();
  }
  $("start").hidden = true; $("paused").hidden = true; $("reading").hidden = false;
  next();
}

function pause() {
  $("reading").hidden = true; $("paused").hidden = false;
  $("paused-at").textContent = state.answers.length + " of " + KIT.trials.length;
  current = null;
}

function another() {
  if (!confirm("Your answers (" + state.answers.length + " trials) are downloaded first, " +
               "then cleared from this browser. Go on?")) return;
  if (state.answers.length) download();
  state = fresh(); save(); location.reload();
}

document.addEventListener("keydown", e => {
  if (e.target.tagName === "INPUT") { if (e.key === "Enter") begin(); return; }
  if ($("reading").hidden) return;
  const k = e.key.toLowerCase();
  let handled = true;
  if (PAIRED && (k === "arrowleft" || k === "1")) answer("left");
  else if (PAIRED && (k === "arrowright" || k === "2")) answer("right");
  else if (!PAIRED && "12345".includes(k) && k.length === 1) answer(Number(k));
  else if (k === "z") { zoomStep = (zoomStep + 1) % ZOOMS.length; sizeCanvases(); }
  else if (k === "r" && current) { win = current.trial.window.slice(); draw(); }
  else if (k === "p") pause();
  else if (k === "d") download();
  else handled = false;
  if (handled) e.preventDefault();
});

window.addEventListener("DOMContentLoaded", () => {
  $("question").textContent = KIT.question;
  $("total").textContent = KIT.trials.length;
  $("keys").textContent = $("footer-keys").textContent = PAIRED ?
    "← or 1: left · → or 2: right" :
    "1 unacceptable · 2 poor · 3 acceptable · 4 good · 5 excellent";
  $("begin").onclick = begin; $("continue").onclick = begin;
  for (const id of ["save", "save-paused", "save-done"]) $(id).onclick = download;
  $("pause").onclick = pause; $("another").onclick = another;
  $("zoom-button").onclick = () => { zoomStep = (zoomStep + 1) % ZOOMS.length; sizeCanvases(); };
  $("reset").onclick = () => { if (current) { win = current.trial.window.slice(); draw(); } };
  if (state.reader) {
    $("name-row").hidden = true;
    $("welcome").textContent = state.answers.length >= KIT.trials.length ?
      "All trials are answered, " + state.reader + ": download your answers." :
      "Welcome back, " + state.reader + ": you have answered " + state.answers.length +
      " of " + KIT.trials.length + " trials. Continue where you stopped.";
    $("welcome").hidden = false; $("another").hidden = false;
    $("begin").textContent = "Continue";
    if (state.answers.length >= KIT.trials.length) { $("start").hidden = true; finish(); }
  }
});
"""


def render(manifest: dict) -> str:
    """The page for one kit's blinded ``manifest`` (with its ``kit_id``)."""
    data = json.dumps(manifest, separators=(",", ":")).replace("</", "<\\/")
    n = len(manifest["trials"])
    question = html.escape(manifest["question"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>Reader study</title><style>{_CSS}</style></head>
<body>
<div id="start" class="screen">
<h1>Reader study</h1>
<p><b>{question}</b></p>
<p>{n} trials. Each shows radiographs at full resolution: one image pixel on one screen
pixel. Take the time you need; there is no time limit.</p>
<ul>
<li>Answer with the keyboard: <b id="keys"></b>.</li>
<li>Drag on an image to change the window: left–right the width, up–down the level;
<kbd>R</kbd> resets it. <kbd>Z</kbd> steps the zoom 1:1 → 2:1 → 4:1 → fit. Scroll to move
around; the images move together.</li>
<li><kbd>P</kbd> pauses. Every answer is saved in this browser at once: you can close the
tab and reopen this file later to go on.</li>
<li>At the end, or at any time with <kbd>D</kbd>, download your answers and send the file
to the study's organizer.</li>
</ul>
<p id="welcome" hidden></p>
<p id="name-row"><label>Your name or reader code: <input id="reader" autocomplete="off">
</label></p>
<p><button id="begin">Start</button><button id="another" hidden>Start as another
reader</button></p>
</div>
<div id="reading" hidden>
<header><span id="progress"></span><span id="bar"><div></div></span>
<span id="question"></span><span id="keyhint"></span><span id="wl"></span>
<span id="zoom"></span>
<span><button id="zoom-button">Zoom (Z)</button><button id="reset">Reset window (R)</button>
<button id="pause">Pause (P)</button><button id="save">Download answers (D)</button></span>
</header>
<div id="panes"></div>
<footer><b id="footer-keys"></b> · drag: window/level · Z zoom · R reset · P pause ·
D download answers</footer>
</div>
<div id="paused" class="screen" hidden><h1>Paused</h1><p>Answered: <span id="paused-at">
</span>. Your answers are saved in this browser.</p>
<p><button id="continue">Continue</button><button id="save-paused">Download answers</button>
</p></div>
<div id="done" class="screen" hidden><h1>Thank you</h1><p>All <span id="total"></span>
trials are answered. Download your answers and send the file to the study's organizer.</p>
<p><button id="save-done">Download answers</button></p></div>
<div id="error" hidden></div>
<script>const KIT = {data};</script>
<script>{_JS}</script>
</body></html>
"""
