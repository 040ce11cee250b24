// mm_compress_ros viewer page: frames and figures from viewer_node over one WebSocket.
// Binary messages: 4-byte big-endian length, JSON metadata, JPEG. Text messages: JSON
// (hello, stats, result). Every frame drawn is acknowledged; the node sends the next frame of a
// modality only after that (the newest one), so a slow page gets fewer frames, never a backlog.
"use strict";

const MODALITIES = ["rgb", "thermal"];
const COLORMAP_STOPS = {
  // [position, r, g, b]; piecewise linear (inferno after matplotlib's, ironbow after FLIR's palette)
  inferno: [[0, 0, 0, 4], [0.125, 31, 12, 72], [0.25, 85, 15, 109], [0.375, 136, 34, 106],
            [0.5, 186, 54, 85], [0.625, 227, 89, 51], [0.75, 249, 140, 10], [0.875, 249, 201, 50],
            [1, 252, 255, 164]],
  ironbow: [[0, 0, 0, 0], [0.15, 30, 0, 110], [0.35, 140, 0, 160], [0.55, 220, 50, 70],
            [0.75, 250, 150, 0], [0.9, 255, 220, 60], [1, 255, 255, 235]],
  gray: [[0, 0, 0, 0], [1, 255, 255, 255]],
};

// Exposed for tests and for the curious: counters and the last data received.
const state = {
  frames: { rgb: 0, thermal: 0 }, stats: 0, results: [], lastStats: null, thermalMeta: null,
  rgbMeta: null, connected: false, colormap: "inferno", alpha: 0.5,
};
window.mmcViewer = state;

const $ = (id) => document.getElementById(id);
let ws = null;
let lut = makeLut("inferno");
let rgbImage = null;                 // ImageBitmap of the last RGB frame
let thermalGray = null;              // ImageData of the last thermal frame (8-bit, before the colormap)
const thermalColored = document.createElement("canvas");
const scratch = document.createElement("canvas");

function makeLut(name) {
  const stops = COLORMAP_STOPS[name] || COLORMAP_STOPS.inferno;
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    let k = 1;
    while (k < stops.length - 1 && stops[k][0] < x) k++;
    const a = stops[k - 1], b = stops[k];
    const t = b[0] > a[0] ? (x - a[0]) / (b[0] - a[0]) : 0;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = a[c + 1] + t * (b[c + 1] - a[c + 1]);
  }
  return out;
}

function drawColorbar() {
  const cb = $("colorbar"), ctx = cb.getContext("2d");
  const img = ctx.createImageData(256, 1);
  for (let i = 0; i < 256; i++) {
    img.data[i * 4] = lut[i * 3]; img.data[i * 4 + 1] = lut[i * 3 + 1];
    img.data[i * 4 + 2] = lut[i * 3 + 2]; img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function fmt(v, digits = 1) {
  return v === null || v === undefined || Number.isNaN(v) ? "n/a" : Number(v).toFixed(digits);
}

function fmtValue(v) {
  return Math.abs(v) >= 1000 ? Math.round(v).toString() : Number(v).toPrecision(4).replace(/\.?0+$/, "");
}

// -- drawing ---------------------------------------------------------------------------------
function renderThermal() {
  if (!thermalGray) return;
  const w = thermalGray.width, h = thermalGray.height;
  thermalColored.width = w; thermalColored.height = h;
  const out = new ImageData(w, h), src = thermalGray.data, dst = out.data;
  for (let i = 0; i < src.length; i += 4) {
    const v = src[i] * 3;
    dst[i] = lut[v]; dst[i + 1] = lut[v + 1]; dst[i + 2] = lut[v + 2]; dst[i + 3] = 255;
  }
  thermalColored.getContext("2d").putImageData(out, 0, 0);
  const cv = $("cv-thermal");
  if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
  cv.getContext("2d").drawImage(thermalColored, 0, 0);
}

function renderFused() {
  const base = rgbImage || (thermalGray ? thermalColored : null);
  if (!base) return;
  const cv = $("cv-fused");
  const w = base.width, h = base.height;
  if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
  const ctx = cv.getContext("2d");
  ctx.globalAlpha = 1;
  if (rgbImage) ctx.drawImage(rgbImage, 0, 0, w, h);
  if (thermalGray) {
    // Resampled to the RGB image's size when the resolutions differ (bilinear, the canvas's own).
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.globalAlpha = rgbImage ? state.alpha : 1;
    ctx.drawImage(thermalColored, 0, 0, w, h);
    ctx.globalAlpha = 1;
  }
}

async function onFrame(buf) {
  const dv = new DataView(buf);
  const n = dv.getUint32(0);
  const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  try {
    const bmp = await createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: "image/jpeg" }));
    if (meta.modality === "rgb") {
      if (rgbImage) rgbImage.close();
      rgbImage = bmp;
      const cv = $("cv-rgb");
      if (cv.width !== bmp.width || cv.height !== bmp.height) { cv.width = bmp.width; cv.height = bmp.height; }
      cv.getContext("2d").drawImage(bmp, 0, 0);
      state.rgbMeta = meta;
      $("rgb-info").textContent = `${meta.width}x${meta.height} ${meta.encoding}`;
    } else {
      scratch.width = bmp.width; scratch.height = bmp.height;
      const sctx = scratch.getContext("2d", { willReadFrequently: true });
      sctx.drawImage(bmp, 0, 0);
      bmp.close();
      thermalGray = sctx.getImageData(0, 0, scratch.width, scratch.height);
      state.thermalMeta = meta;
      renderThermal();
      showRange(meta);
    }
    renderFused();
    state.frames[meta.modality] += 1;
  } finally {
    send({ type: "ack", modality: meta.modality, version: meta.version });
  }
}

function showRange(meta) {
  $("thermal-info").textContent = `${meta.width}x${meta.height} ${meta.encoding}`;
  $("range-lo-label").textContent = fmtValue(meta.lo);
  $("range-hi-label").textContent = fmtValue(meta.hi);
  $("thermal-range").textContent =
    `range ${meta.range_mode === "fixed" ? "fixed" : "automatic (1st-99th percentile)"}: ` +
    `${fmtValue(meta.lo)} .. ${fmtValue(meta.hi)} | frame min ${fmtValue(meta.min)}, max ${fmtValue(meta.max)} ` +
    `(of 0..${fmtValue(meta.full)})`;
}

// -- figures ---------------------------------------------------------------------------------
function setBadge(el, label, status) {
  if (!status) { el.textContent = `${label}: no diagnostics`; el.className = "badge"; return; }
  const stale = status.age_s > 5;
  el.textContent = `${label}: ${stale ? "silent " + Math.round(status.age_s) + " s" : status.message}`;
  el.className = "badge " + (stale || status.level >= 2 ? "bad" : status.level === 1 ? "warn" : "ok");
}

function num(values, key) {
  const v = values ? Number(values[key]) : NaN;
  return Number.isFinite(v) ? v : 0;
}

function onStats(s) {
  state.stats += 1;
  state.lastStats = s;
  for (const m of MODALITIES) {
    const f = s.modalities[m], c = s.client[m];
    $(`fig-${m}-kbps`).textContent = fmt(f.kbps);
    $(`fig-${m}-fps`).textContent = fmt(f.fps);
    $(`fig-${m}-lat-send`).textContent = fmt(c.latency_send_ms, 0);
    $(`fig-${m}-lat-display`).textContent = fmt(c.latency_display_ms, 0);
    $(`fig-${m}-psnr`).textContent = f.psnr_db === null ? "n/a" : fmt(f.psnr_db, 2);
    $(`fig-${m}-skipped`).textContent = `${c.skipped} (of ${c.sent + c.skipped})`;
  }
  const ev = s.encoder ? s.encoder.values : null, dv = s.decoder ? s.decoder.values : null;
  const encDropped = num(ev, "drops") + num(ev, "stale");
  const decDropped = num(dv, "overflow_drops") + num(dv, "skipped");
  $("fig-dropped").textContent =
    `encoder ${ev ? encDropped : "n/a"} | decoder ${dv ? decDropped : "n/a"}`;
  $("fig-lost").textContent =
    `${s.link.lost} packets missing here | decoder ${dv ? num(dv, "lost") : "n/a"}` +
    (s.link.unreadable ? ` | ${s.link.unreadable} unreadable` : "");
  const L = s.link;
  $("link-packets").textContent = `${L.packets} (${fmt(L.packet_rate)} /s, ${fmt(L.kbps)} kbit/s)`;
  $("link-seq").textContent = L.sequence === null ? "-" : String(L.sequence);
  $("link-type").textContent = L.frame_type || "-";
  $("link-keys").textContent = String(L.key_frames);
  $("link-quality").textContent = L.quality === null ? "-" : String(L.quality);
  $("link-profile").textContent = L.reference_codec
    ? `${L.codec}, RGB ${L.reference_codec}, thermal ${L.thermal_codec}` : "-";
  $("link-dec-latency").textContent = dv ? fmt(num(dv, "latency_ms_mean"), 0) : "n/a";
  const p = s.encoder_params;
  $("link-params").textContent = p ? `quality ${p.quality}, target_kbps ${p.target_kbps}` : "unknown";
  if (p && !qualityEdited) $("quality").value = p.quality;   // start from the encoder's level
  setBadge($("enc-status"), "encoder", s.encoder);
  setBadge($("dec-status"), "decoder", s.decoder);
}

let qualityEdited = false;   // the quality box follows the encoder until the operator types in it
document.getElementById("quality").addEventListener("input", () => { qualityEdited = true; });

// -- connection and controls ------------------------------------------------------------------
function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function rangeSettings() {
  return { range_mode: $("range-mode").value, range_lo: Number($("range-lo").value),
           range_hi: Number($("range-hi").value) };
}

function onHello(h) {
  $("colormap").innerHTML = "";
  for (const name of h.colormaps) {
    const o = document.createElement("option"); o.value = o.textContent = name; $("colormap").appendChild(o);
  }
  if (!state.configured) {   // the node's defaults, once; a reconnect keeps the operator's choices
    state.configured = true;
    $("range-mode").value = h.range_mode;
    $("range-lo").value = h.range_lo; $("range-hi").value = h.range_hi;
    state.alpha = h.alpha; $("alpha").value = h.alpha; $("alpha-value").textContent = fmt(h.alpha, 2);
    state.colormap = h.colormap;
  }
  $("colormap").value = state.colormap;
  lut = makeLut(state.colormap); drawColorbar();
  updateRangeInputs();
  $("btn-key").title = `calls ${h.key_frame_service}`;
}

function onResult(r) {
  state.results.push(r);
  $("action-result").textContent = `${r.ok ? "ok" : "failed"}: ${r.message}`;
  $("action-result").className = "info";
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    state.connected = true;
    $("conn").textContent = "connected"; $("conn").className = "badge ok";
    send({ type: "hello", ack: true, ...rangeSettings() });
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") { onFrame(ev.data); return; }
    const msg = JSON.parse(ev.data);
    if (msg.type === "stats") onStats(msg);
    else if (msg.type === "hello") onHello(msg);
    else if (msg.type === "result") onResult(msg);
  };
  ws.onclose = () => {
    state.connected = false;
    $("conn").textContent = "disconnected, retrying"; $("conn").className = "badge bad";
    setTimeout(connect, 1000);
  };
}

function updateRangeInputs() {
  const fixed = $("range-mode").value === "fixed";
  for (const id of ["range-lo", "range-hi", "btn-range"]) $(id).disabled = !fixed;
}

$("range-mode").addEventListener("change", () => {
  // Switching to a fixed range freezes the current automatic one (edit it, then apply).
  if ($("range-mode").value === "fixed" && state.thermalMeta && state.thermalMeta.range_mode === "auto") {
    $("range-lo").value = Math.floor(state.thermalMeta.lo);
    $("range-hi").value = Math.ceil(state.thermalMeta.hi);
  }
  updateRangeInputs();
  send({ type: "settings", ...rangeSettings() });
});
$("btn-range").addEventListener("click", () => send({ type: "settings", ...rangeSettings() }));
$("colormap").addEventListener("change", () => {
  state.colormap = $("colormap").value;
  lut = makeLut(state.colormap); drawColorbar(); renderThermal(); renderFused();
});
$("alpha").addEventListener("input", () => {
  state.alpha = Number($("alpha").value);
  $("alpha-value").textContent = fmt(state.alpha, 2);
  renderFused();
});
function action(obj, label) {
  $("action-result").textContent = `${label}...`;
  send(obj);
}
$("btn-key").addEventListener("click", () => action({ type: "key_frame" }, "requesting a key frame"));
$("btn-quality").addEventListener("click", () =>
  action({ type: "set_parameter", name: "quality", value: Number($("quality").value) }, "setting quality"));
$("btn-target").addEventListener("click", () =>
  action({ type: "set_parameter", name: "target_kbps", value: Number($("target").value) }, "setting target bitrate"));

drawColorbar();
connect();
