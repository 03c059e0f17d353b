// The dediffusion page: plain JS over the JSON API (no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { blob: null, name: "", text: "", scene: null, run: 0 };

function status(message, busy = false) {
  $("status").textContent = message;
  $("status").className = busy ? "busy" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const part = body.part ? ` (${body.part})` : "";
    throw new Error(`${body.error || "HTTP " + response.status}${part}`);
  }
  return body;
}

const postJSON = (path, data) => api(path, {
  method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data),
});

function sampling() {
  return { guidance: Number($("guidance").value), seed: Number($("seed").value), steps: Number($("steps").value) };
}

function dataURIToBlob(uri) {
  const bytes = atob(uri.split(",")[1]);
  const array = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) array[i] = bytes.charCodeAt(i);
  return new Blob([array], { type: "image/png" });
}

async function useImage(blob, name, scene = null) {
  const run = ++state.run;
  Object.assign(state, { blob, name, scene, text: "" });
  for (const id of ["recon-btn", "ask-btn", "explain-btn"]) $(id).disabled = true;
  $("input").src = URL.createObjectURL(blob);
  $("input").hidden = false;
  $("input-name").textContent = name;
  for (const id of ["text", "answer", "tokens"]) $(id).textContent = "";
  for (const id of ["recon", "caption-recon"]) $(id).removeAttribute("src");
  $("caption-fig").hidden = $("full-caption").hidden = !scene;
  if (scene) {
    $("caption").textContent = scene.human_caption;
    $("full-caption").textContent = `full caption (every attribute): ${scene.full_caption}`;
  }
  status("encoding ...", true);
  try {
    const form = new FormData();
    form.append("files", blob, name);
    const result = (await api("/encode", { method: "POST", body: form })).results[0];
    if (run !== state.run) return;
    if (result.error) throw new Error(`${result.error} (${result.part})`);
    state.text = result.text;
    $("text").textContent = result.text;
    $("ask-btn").disabled = $("explain-btn").disabled = false;
    await reconstruct(run);
  } catch (e) {
    if (run === state.run) status(e.message);
  }
}

async function reconstruct(run = state.run) {
  $("recon-btn").disabled = true;
  status("decoding ...", true);
  const jobs = [postJSON("/decode", { text: state.text, ...sampling() })];
  if (state.scene) jobs.push(postJSON("/decode", { text: state.scene.human_caption, ...sampling() }));
  try {
    const [recon, caption] = await Promise.all(jobs);
    if (run !== state.run) return;
    $("recon").src = recon.image;
    if (caption) $("caption-recon").src = caption.image;
    status("");
    document.body.dataset.ready = String(run);
  } catch (e) {
    if (run === state.run) status(e.message);
  } finally {
    if (run === state.run) $("recon-btn").disabled = false;
  }
}

async function drawScene() {
  try {
    const scene = await api("/scene");
    await useImage(dataURIToBlob(scene.image), `world scene ${scene.seed}/${scene.index}`, scene);
  } catch (e) {
    status(e.message);
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || !state.text) return;
  $("answer").textContent = "";
  status("asking the language model (the first question loads it) ...", true);
  try {
    const form = new FormData();  // the image, so the LLM reads what `dediffusion ask` gives it (the reader's caption)
    form.append("files", state.blob, state.name);
    form.append("question", question);
    const reply = await api("/ask", { method: "POST", body: form });
    $("answer").textContent = (reply.answer || `(no short answer; the model said: ${reply.reply})`) +
      `  [the LLM read: "${reply.context}"]`;
    status("");
  } catch (e) {
    status(e.message);
  }
}

function heatCanvas(heat, max) {
  const canvas = document.createElement("canvas");
  canvas.width = heat[0].length;
  canvas.height = heat.length;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  heat.flat().forEach((v, i) => {
    const t = max > 0 ? Math.min(1, v / max) : 0;
    img.data.set([255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t)), 255], 4 * i);
  });
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function showTokens(result, variant) {
  const box = $("tokens");
  box.textContent = "";
  const max = Math.max(...result.tokens.flatMap((t) => t[variant].heat.flat()));
  for (const token of result.tokens) {
    const cell = document.createElement("div");
    cell.className = "token";
    const word = document.createElement("div");
    word.className = "word";
    word.textContent = token.word || token.token;
    const change = document.createElement("div");
    change.textContent = `change ${token[variant].change.toFixed(3)}`;
    const list = document.createElement("ul");
    for (const c of token[variant].probe_changes || []) {
      const li = document.createElement("li");
      li.textContent = `${c.attribute}: ${c.from} -> ${c.to}`;
      list.appendChild(li);
    }
    cell.append(heatCanvas(token[variant].heat, max), word, change, list);
    box.appendChild(cell);
  }
}

async function explain() {
  if (!state.blob) return;
  const run = state.run;
  $("explain-btn").disabled = true;
  status("explaining: every token re-decoded twice (this takes a while) ...", true);
  try {
    const form = new FormData();
    form.append("files", state.blob, state.name);
    for (const [k, v] of Object.entries(sampling())) form.append(k, String(v));
    const result = await api("/explain", { method: "POST", body: form });
    if (run !== state.run) return;
    state.explained = result;
    showTokens(result, $("variant").value);
    status("");
  } catch (e) {
    if (run === state.run) status(e.message);
  } finally {
    $("explain-btn").disabled = false;
  }
}

function wireDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) useImage(file, file.name);
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) useImage(file, file.name);
  });
}

async function showHealth() {
  try {
    const h = await api("/health");
    $("health").textContent = `encoder ${h.encoder} | decoder ${h.decoder} | ${h.tokens} tokens | ` +
      `${h.resolution}px`;
    if (!h.explain) $("explain-btn").title = "not available on this server";
  } catch (e) {
    status(e.message);
  }
}

wireDrop();
$("scene-btn").addEventListener("click", drawScene);
$("recon-btn").addEventListener("click", () => reconstruct());
$("ask-form").addEventListener("submit", ask);
$("explain-btn").addEventListener("click", explain);
$("variant").addEventListener("change", () => state.explained && showTokens(state.explained, $("variant").value));
showHealth();
