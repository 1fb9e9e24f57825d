// The box editor: predictions (dashed) and human boxes (solid) over the image, keyboard first.
// Every coordinate is kept in image pixels; the SVG's viewBox maps them to the screen at any zoom.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("editor-data").textContent);
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("stage");
  const itemLayer = document.getElementById("items");
  const theirsLayer = document.getElementById("theirs");
  const statusLine = document.getElementById("status-line");
  const thresholdInput = document.getElementById("threshold");
  const thresholdValue = document.getElementById("threshold-value");
  const itemList = document.getElementById("item-list");
  const conflictBanner = document.getElementById("conflict");
  const help = document.getElementById("help");
  const classSearch = document.getElementById("class-search");  // only with more than nine classes
  const classMatches = document.getElementById("class-matches");
  const classes = data.classes;
  const classById = Object.fromEntries(classes.map((c) => [c.id, c]));
  const openedAt = performance.now();
  const MIN_SIZE = 2;  // pixels: a drag shorter than this is a click, not a new box

  let image = data.image;
  let items = [];          // {key, kind: "prediction" | "box", predictionId, cls, x, y, w, h, score}
  let selected = null;     // key of the selected item
  let drawClass = classes.length ? classes[0].id : null;
  // The slider starts at the project's review threshold. A reviewer who moves it keeps their value in
  // this project until a manager sets a new review threshold, which everyone then starts from.
  const thresholdKey = `review.threshold.${data.project.id}`;
  const savedThreshold = JSON.parse(localStorage.getItem(thresholdKey) || "null");
  let threshold = savedThreshold && savedThreshold.project === data.project.score_threshold
    ? savedThreshold.value : data.project.score_threshold;
  // Brightness and contrast change only how the image is drawn (a CSS filter). A reviewer working
  // through a night camera keeps them from image to image of this project.
  const lightKey = `review.light.${data.project.id}`;
  const NORMAL_LIGHT = {brightness: 1, contrast: 1};
  let light = {...NORMAL_LIGHT, ...JSON.parse(localStorage.getItem(lightKey) || "{}")};
  const photo = svg.querySelector("image");
  const lightInputs = {brightness: document.getElementById("brightness"), contrast: document.getElementById("contrast")};
  let view = {x: 0, y: 0, w: image.width, h: image.height};
  let undoStack = [], redoStack = [];
  let drag = null;         // what the mouse is doing: move, resize, draw or pan
  let nextKey = 1;
  let saving = false;
  let dirty = false;
  const sendBack = document.getElementById("send-back");
  // Approving from the approval pass (the image was already reviewed) goes on to the next reviewed image.
  const nextAfterApproval = data.image.status === "unreviewed" ? data.urls.next : data.urls.next_approval;

  // --- State ---------------------------------------------------------------------------------------

  // ?focus=x,y,w,h (the error patches link here with it): zoom to that region and outline it.
  function focusFromAddress() {
    const focus = (new URLSearchParams(window.location.search).get("focus") || "").split(",").map(Number);
    if (focus.length !== 4 || !focus.every(Number.isFinite) || focus[2] <= 0 || focus[3] <= 0) return;
    const [fx, fy, fw, fh] = focus;
    const side = Math.max(fw, fh, 32) * 3;
    const w = Math.min(image.width, side), h = Math.min(image.height, side);
    view = {x: Math.min(Math.max(0, fx + fw / 2 - w / 2), image.width - w),
            y: Math.min(Math.max(0, fy + fh / 2 - h / 2), image.height - h), w, h};
    el("rect", {x: fx, y: fy, width: fw, height: fh, fill: "none", class: "focus"}, document.getElementById("focus"));
  }

  function load(detail) {
    image = detail;
    const fromPredictions = new Set(detail.boxes.map((b) => b.source_prediction_id).filter((id) => id));
    items = detail.boxes.map((b) => ({key: nextKey++, kind: "box", predictionId: b.source_prediction_id,
      cls: b.label_class, x: b.x, y: b.y, w: b.w, h: b.h, score: null}));
    // A reviewed image shows its saved boxes; predictions already turned into boxes are not offered twice.
    if (detail.status === "unreviewed" || detail.boxes.length === 0) {
      for (const p of detail.predictions) {
        if (!fromPredictions.has(p.id)) {
          items.push({key: nextKey++, kind: "prediction", predictionId: p.id, cls: p.label_class,
            x: p.x, y: p.y, w: p.w, h: p.h, score: p.score});
        }
      }
    }
    selected = null;
    undoStack = []; redoStack = [];
    dirty = false;
  }

  function snapshot() { return JSON.stringify({items, selected}); }

  function change(mutate) {
    undoStack.push(snapshot());
    if (undoStack.length > 200) undoStack.shift();
    redoStack = [];
    mutate();
    dirty = true;
    render();
  }

  function restore(from, to) {
    if (!from.length) return;
    to.push(snapshot());
    const state = JSON.parse(from.pop());
    items = state.items; selected = state.selected;
    dirty = true;
    render();
  }

  const visible = () => items.filter((i) => i.kind === "box" || i.score >= threshold);
  const find = (key) => items.find((i) => i.key === key);
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  function accept(item, cls) {
    item.kind = "box";
    if (cls !== undefined) item.cls = cls;
  }

  // --- Rendering -----------------------------------------------------------------------------------

  function el(name, attrs, parent) {
    const node = document.createElementNS(svgNS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function pixelsPerScreenPixel() {
    const rect = svg.getBoundingClientRect();
    return Math.max(view.w / rect.width, view.h / rect.height);
  }

  // One box's shapes; `unit` is an image pixel's size on screen, so lines and labels keep their size at any zoom.
  function drawItem(item, unit, parent) {
    const colour = (classById[item.cls] || {}).colour || "#888";
    const group = el("g", {"data-key": item.key, class: `item ${item.kind}` + (item.key === selected ? " selected" : "")}, parent);
    el("rect", {x: item.x, y: item.y, width: item.w, height: item.h, stroke: colour, "stroke-width": 2 * unit,
      "stroke-dasharray": item.kind === "prediction" ? `${6 * unit} ${4 * unit}` : "none",
      fill: item.key === selected ? colour + "33" : "transparent", class: "body"}, group);
    const label = el("text", {x: item.x + 2 * unit, y: item.y - 3 * unit, fill: colour, "font-size": 12 * unit}, group);
    label.textContent = (classById[item.cls] || {name: "?"}).name + (item.kind === "prediction" ? ` ${item.score.toFixed(2)}` : "");
    if (item.key === selected) {
      for (const [hx, hy, corner] of [[item.x, item.y, "nw"], [item.x + item.w, item.y, "ne"],
                                      [item.x, item.y + item.h, "sw"], [item.x + item.w, item.y + item.h, "se"]]) {
        el("rect", {x: hx - 4 * unit, y: hy - 4 * unit, width: 8 * unit, height: 8 * unit, class: "handle",
          "data-corner": corner, fill: "#fff", stroke: colour, "stroke-width": unit}, group);
      }
    }
    return group;
  }

  // Rebuilding every box and list row on each change took 70 ms a mouse move with a parking lot's 500
  // boxes on a 2-core machine (130 ms a Tab with 2,000), so each render rebuilds only the boxes and rows
  // whose drawing changed, and a drag only redraws the box it moves.
  const drawn = new Map();   // item key -> {sig, node}: the box's shapes, and what they were drawn from
  const listed = new Map();  // item key -> {sig, node}: its row in the list

  function reused(cache, key, sig, make) {
    const known = cache.get(key);
    if (known && known.sig === sig) return known.node;
    const node = make();
    cache.set(key, {sig, node});
    return node;
  }

  // `parent`'s children become `nodes`, in order, moving as few as it can.
  function setChildren(parent, nodes) {
    const current = parent.children;
    if (current.length === nodes.length && nodes.every((node, at) => current[at] === node || !node.isConnected)) {
      nodes.forEach((node, at) => { if (current[at] !== node) current[at].replaceWith(node); });
      return;
    }
    parent.replaceChildren(...nodes);
  }

  function forgetGone(cache, shown) {
    if (cache.size <= shown.length) return;
    const keys = new Set(shown.map((item) => item.key));
    for (const key of cache.keys()) if (!keys.has(key)) cache.delete(key);
  }

  function renderDragged(item) {
    const node = drawn.has(item.key) && drawn.get(item.key).node;
    if (!node || !node.isConnected) { render(); return; }
    const moved = drawItem(item, pixelsPerScreenPixel(), null);
    node.replaceWith(moved);
    drawn.set(item.key, {sig: null, node: moved});  // the next render draws it from its final place
  }

  // Setting the viewBox, even to the value it has, makes the browser lay out every box again.
  function setViewBox() {
    const box = `${view.x} ${view.y} ${view.w} ${view.h}`;
    if (svg.getAttribute("viewBox") !== box) svg.setAttribute("viewBox", box);
  }

  function render() {
    const unit = pixelsPerScreenPixel();  // read before anything changes, so it needs no new layout
    setViewBox();
    const shown = visible();
    forgetGone(drawn, shown);
    setChildren(itemLayer, shown.map((item) => reused(drawn, item.key,
      `${item.x} ${item.y} ${item.w} ${item.h} ${item.cls} ${item.kind} ${item.score} ${item.key === selected} ${unit}`,
      () => drawItem(item, unit, null))));
    renderList(shown);
    const boxes = items.filter((i) => i.kind === "box").length;
    const pending = shown.filter((i) => i.kind === "prediction").length;
    // The queue ranks an image by its most doubtful box, which may lie just under the threshold: say so.
    const hidden = items.filter((i) => i.kind === "prediction").length - pending;
    statusLine.textContent = `${boxes} box${boxes === 1 ? "" : "es"}, ${pending} prediction${pending === 1 ? "" : "s"} to decide` +
      (hidden ? ` (${hidden} more under ${thresholdText()}: lower the score slider to see ${hidden === 1 ? "it" : "them"})` : "") +
      ` · ${image.status} · version ${image.version}` + (dirty ? " · unsaved changes" : "");
    if (sendBack) sendBack.hidden = image.status === "unreviewed";
    document.getElementById("undo").disabled = !undoStack.length;
    document.getElementById("redo").disabled = !redoStack.length;
    for (const button of document.querySelectorAll("[data-class]")) {
      button.classList.toggle("active", Number(button.dataset.class) === drawClass);
    }
    if (classSearch) {  // a class past the ninth has no button: the picker names it
      const past = classes.findIndex((c) => c.id === drawClass) >= 9;
      classSearch.classList.toggle("active", past);
      classSearch.placeholder = past ? classById[drawClass].name : classSearch.dataset.placeholder;
    }
  }

  function listRow(item) {
    const li = document.createElement("li");
    li.dataset.key = item.key;
    li.className = item.kind + (item.key === selected ? " selected" : "");
    const name = (classById[item.cls] || {name: "?"}).name;  // textContent: names are never parsed as HTML
    li.textContent = `${item.kind === "prediction" ? "◌" : "■"} ${name}` +
      (item.score !== null && item.score !== undefined ? ` ${item.score.toFixed(2)}` : "") +
      ` (${Math.round(item.x)}, ${Math.round(item.y)}, ${Math.round(item.w)}×${Math.round(item.h)})`;
    return li;
  }

  function renderList(shown) {
    forgetGone(listed, shown);
    if (!shown.length) {  // say what to do rather than show an empty panel
      const li = document.createElement("li");
      li.className = "empty muted";
      li.textContent = `No boxes: drag on the image to draw one (1-9${classSearch ? " or /" : ""} choose its class). ` +
        "Saved with none, the image says it holds no objects.";
      itemList.replaceChildren(li);
      return;
    }
    setChildren(itemList, shown.map((item) => reused(listed, item.key,
      `${item.kind} ${item.cls} ${item.score} ${Math.round(item.x)} ${Math.round(item.y)} ${Math.round(item.w)} ` +
      `${Math.round(item.h)} ${item.key === selected}`, () => listRow(item))));
  }

  // --- Keyboard ------------------------------------------------------------------------------------

  // A project with more classes than number keys (a street camera: car, van, truck, bus, ...): "/"
  // opens a box that lists the classes whose names hold what is typed, those starting with it first.
  let matches = [], matchAt = 0;

  function showMatches() {
    const typed = classSearch.value.trim().toLowerCase();
    const numbered = classes.map((c, i) => ({number: i + 1, name: c.name, colour: c.colour, low: c.name.toLowerCase()}));
    matches = [...numbered.filter((c) => c.low.startsWith(typed)),
               ...numbered.filter((c) => !c.low.startsWith(typed) && c.low.includes(typed))];
    matchAt = Math.min(matchAt, Math.max(matches.length - 1, 0));
    classMatches.replaceChildren();
    if (!matches.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = `No class holds "${classSearch.value.trim()}"`;
      classMatches.appendChild(li);
    }
    matches.forEach((match, at) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.className = at === matchAt ? "current" : "";
      li.style.borderLeftColor = match.colour;
      li.textContent = match.name;  // textContent: names are never parsed as HTML
      li.addEventListener("mousedown", (event) => { event.preventDefault(); pickMatch(at); });
      classMatches.appendChild(li);
    });
    classMatches.hidden = false;
    const current = classMatches.querySelector(".current");
    if (current) current.scrollIntoView({block: "nearest"});
  }

  function closeMatches() {
    classSearch.value = "";
    classMatches.hidden = true;
    classSearch.blur();  // the keys belong to the editor again
  }

  function pickMatch(at) {
    const match = matches[at];
    closeMatches();
    if (match) relabel(match.number);
    render();
  }

  function openClassSearch() {
    if (!classSearch) return;
    matchAt = 0;
    classSearch.focus();
    showMatches();
  }

  function cycle(step) {
    const list = visible();
    if (!list.length) return;
    const at = list.findIndex((i) => i.key === selected);
    selected = list[(at + step + list.length) % list.length].key;
    render();
  }

  function setLight(changes) {
    for (const [name, value] of Object.entries(changes)) {
      const input = lightInputs[name];
      light[name] = clamp(Number(value) || 1, Number(input.min), Number(input.max));
      input.value = light[name];
    }
    photo.style.filter = `brightness(${light.brightness}) contrast(${light.contrast})`;
    localStorage.setItem(lightKey, JSON.stringify(light));
  }

  // Copy and paste boxes between images of this project: a fixed camera sees the same parked cars
  // frame after frame. The clipboard is this browser's, per project (class ids are the project's).
  const clipboardKey = `review.clipboard.${data.project.id}`;

  function copyBoxes() {
    const item = find(selected);
    const chosen = item ? [item] : items.filter((i) => i.kind === "box");
    if (!chosen.length) { statusLine.textContent = "Nothing to copy: select a box, or draw or accept some first."; return; }
    localStorage.setItem(clipboardKey, JSON.stringify(chosen.map((i) => ({cls: i.cls, x: i.x, y: i.y, w: i.w, h: i.h}))));
    statusLine.textContent = (`Copied ${chosen.length} box${chosen.length === 1 ? "" : "es"}: Ctrl+V pastes ${chosen.length === 1 ? "it" : "them"} into another image.`);
  }

  function pasteBoxes() {
    // Boxes are clipped to this image; one left with no area, or of a class deleted since, is left out.
    const copied = JSON.parse(localStorage.getItem(clipboardKey) || "[]").map((b) => {
      const x = clamp(b.x, 0, image.width), y = clamp(b.y, 0, image.height);
      return {cls: b.cls, x, y, w: Math.min(b.x + b.w, image.width) - x, h: Math.min(b.y + b.h, image.height) - y};
    }).filter((b) => classById[b.cls] && b.w >= MIN_SIZE && b.h >= MIN_SIZE);
    if (!copied.length) { statusLine.textContent = "Nothing to paste: Ctrl+C copies the selected box, or every box, first."; return; }
    change(() => {
      for (const b of copied) items.push({key: nextKey++, kind: "box", predictionId: null, score: null, ...b});
      selected = items[items.length - 1].key;
    });
  }

  function nudge(dx, dy) {
    const item = find(selected);
    if (!item) return;
    change(() => {
      item.x = clamp(item.x + dx, 0, image.width - item.w);
      item.y = clamp(item.y + dy, 0, image.height - item.h);
      if (item.kind === "prediction") accept(item);
    });
  }

  const keys = {
    "a": () => { const item = find(selected); if (item && item.kind === "prediction") { change(() => accept(item)); cycle(1); } },
    "A": () => change(() => visible().forEach((i) => { if (i.kind === "prediction") accept(i); })),
    "d": () => deleteSelected(), "Delete": () => deleteSelected(), "Backspace": () => deleteSelected(),
    "Tab": () => cycle(1), "shift+Tab": () => cycle(-1),
    "Enter": () => save(true),
    "shift+Enter": () => { if (data.can_approve) approve(); },
    "ctrl+s": () => save(false),
    "s": () => skip(),
    "ctrl+z": () => restore(undoStack, redoStack), "ctrl+shift+Z": () => restore(redoStack, undoStack),
    "ctrl+y": () => restore(redoStack, undoStack),
    "ctrl+c": () => copyBoxes(), "ctrl+v": () => pasteBoxes(),
    "+": () => zoom(0.8), "=": () => zoom(0.8), "-": () => zoom(1.25), "0": () => { view = {x: 0, y: 0, w: image.width, h: image.height}; render(); },
    "ArrowLeft": () => nudge(-1, 0), "ArrowRight": () => nudge(1, 0), "ArrowUp": () => nudge(0, -1), "ArrowDown": () => nudge(0, 1),
    "shift+ArrowLeft": () => nudge(-10, 0), "shift+ArrowRight": () => nudge(10, 0),
    "shift+ArrowUp": () => nudge(0, -10), "shift+ArrowDown": () => nudge(0, 10),
    "b": () => setLight({brightness: light.brightness + 0.25}), "B": () => setLight({brightness: light.brightness - 0.25}),
    "c": () => setLight({contrast: light.contrast + 0.25}), "C": () => setLight({contrast: light.contrast - 0.25}),
    "l": () => setLight(NORMAL_LIGHT),
    "Escape": () => { help.hidden = true; selected = null; render(); },
    "?": () => { help.hidden = !help.hidden; },
    "/": () => openClassSearch(),
  };

  function deleteSelected() {
    const item = find(selected);
    if (!item) return;
    const list = visible();
    const at = list.findIndex((i) => i.key === selected);
    change(() => {
      items = items.filter((i) => i.key !== item.key);
      const rest = list.filter((i) => i.key !== item.key);
      selected = rest.length ? rest[Math.min(at, rest.length - 1)].key : null;
    });
  }

  function relabel(number) {
    const cls = classes[number - 1];
    if (!cls) return;
    const item = find(selected);
    if (!item) { drawClass = cls.id; render(); return; }
    change(() => { item.cls = cls.id; if (item.kind === "prediction") accept(item); });
    drawClass = cls.id;
  }

  // Hold h to see the image without the boxes; letting go (or leaving the window) shows them again,
  // so they can never be left hidden by mistake.
  const peek = (on) => svg.classList.toggle("peek", on);
  document.addEventListener("keyup", (event) => { if (event.key === "h") peek(false); });
  window.addEventListener("blur", () => peek(false));
  for (const [name, input] of Object.entries(lightInputs)) {
    input.addEventListener("input", () => setLight({[name]: input.value}));
  }
  // A slider let go hands the keys back to the editor (Enter saves, arrows move the box, not the slider).
  for (const slider of [thresholdInput, ...Object.values(lightInputs)]) {
    slider.addEventListener("change", () => slider.blur());
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, textarea, select")) return;
    if (event.key === "h" && !event.ctrlKey && !event.metaKey) { peek(true); event.preventDefault(); return; }
    const combo = (event.ctrlKey || event.metaKey ? "ctrl+" : "") +
      (event.shiftKey && (event.key.length > 1 || event.ctrlKey || event.metaKey) ? "shift+" : "") + event.key;
    if (/^[1-9]$/.test(event.key) && !event.ctrlKey) { relabel(Number(event.key)); event.preventDefault(); return; }
    if (combo === "ctrl+c" && String(window.getSelection())) return;  // text selected on the page: the browser copies it
    const action = keys[combo];
    if (action) { action(); event.preventDefault(); }
  });

  // --- Mouse ---------------------------------------------------------------------------------------

  function toImage(event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX; point.y = event.clientY;
    const p = point.matrixTransform(svg.getScreenCTM().inverse());
    return {x: p.x, y: p.y};
  }

  function zoom(factor, centre) {
    const c = centre || {x: view.x + view.w / 2, y: view.y + view.h / 2};
    const w = clamp(view.w * factor, 16, image.width * 4), h = w * view.h / view.w;
    view = {x: c.x - (c.x - view.x) * w / view.w, y: c.y - (c.y - view.y) * h / view.h, w, h};
    render();
  }

  svg.addEventListener("wheel", (event) => { event.preventDefault(); zoom(event.deltaY > 0 ? 1.15 : 0.87, toImage(event)); },
                       {passive: false});

  svg.addEventListener("mousedown", (event) => {
    const p = toImage(event);
    if (event.button === 1 || event.button === 2 || event.altKey) {
      drag = {mode: "pan", start: {x: event.clientX, y: event.clientY}, view: {...view}};
      event.preventDefault();
      return;
    }
    const handle = event.target.closest(".handle");
    const group = event.target.closest("g.item");
    if (group) {
      const item = find(Number(group.dataset.key));
      selected = item.key;
      undoStack.push(snapshot()); redoStack = [];
      drag = {mode: handle ? "resize" : "move", corner: handle && handle.dataset.corner, item, start: p,
              origin: {x: item.x, y: item.y, w: item.w, h: item.h}, moved: false};
    } else {
      selected = null;
      // A box started in the margin around the image starts at its edge: never a box the save refuses.
      drag = {mode: "draw", start: {x: clamp(p.x, 0, image.width), y: clamp(p.y, 0, image.height)}, item: null};
    }
    render();
    event.preventDefault();
  });

  svg.addEventListener("contextmenu", (event) => event.preventDefault());

  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    if (drag.mode === "pan") {  // the zoom stays, so the boxes' shapes do too: only the view moves
      const unit = pixelsPerScreenPixel();
      view = {...drag.view, x: drag.view.x - (event.clientX - drag.start.x) * unit, y: drag.view.y - (event.clientY - drag.start.y) * unit};
      setViewBox();
      return;
    }
    const p = toImage(event);
    const px = clamp(p.x, 0, image.width), py = clamp(p.y, 0, image.height);
    if (drag.mode === "draw") {
      const w = Math.abs(px - drag.start.x), h = Math.abs(py - drag.start.y);
      if (!drag.item && (w < MIN_SIZE || h < MIN_SIZE)) return;
      if (!drag.item) {
        undoStack.push(snapshot()); redoStack = [];
        drag.item = {key: nextKey++, kind: "box", predictionId: null, cls: drawClass, score: null};
        items.push(drag.item);
        selected = drag.item.key;
      }
      Object.assign(drag.item, {x: Math.min(px, drag.start.x), y: Math.min(py, drag.start.y), w, h});
    } else if (drag.mode === "move") {
      const o = drag.origin;
      drag.item.x = clamp(o.x + p.x - drag.start.x, 0, image.width - o.w);
      drag.item.y = clamp(o.y + p.y - drag.start.y, 0, image.height - o.h);
      drag.moved = true;
    } else if (drag.mode === "resize") {
      const o = drag.origin;
      let x1 = o.x, y1 = o.y, x2 = o.x + o.w, y2 = o.y + o.h;
      if (drag.corner.includes("w")) x1 = px; else x2 = px;
      if (drag.corner.includes("n")) y1 = py; else y2 = py;
      Object.assign(drag.item, {x: Math.min(x1, x2), y: Math.min(y1, y2), w: Math.max(Math.abs(x2 - x1), MIN_SIZE),
                                h: Math.max(Math.abs(y2 - y1), MIN_SIZE)});
      drag.moved = true;
    }
    if (drag.item && drag.item.kind === "prediction" && drag.moved) accept(drag.item);
    dirty = true;
    if (drag.item) renderDragged(drag.item);  // the list and the status line follow on mouseup
  });

  window.addEventListener("mouseup", () => {
    if (drag && (drag.mode === "move" || drag.mode === "resize") && !drag.moved) undoStack.pop();  // a plain click
    drag = null;
    render();
  });

  // --- Saving --------------------------------------------------------------------------------------

  function payload(version) {
    return {
      version,
      boxes: items.filter((i) => i.kind === "box").map((i) => ({
        label_class: i.cls, x: round(i.x), y: round(i.y), w: round(i.w), h: round(i.h),
        source_prediction: i.predictionId || null})),
      model_version: image.model_version,
      score_threshold: threshold,
      seconds_spent: (performance.now() - openedAt) / 1000,
    };
  }
  const round = (v) => Math.round(v * 100) / 100;

  async function save(thenNext, version) {
    if (saving) return;
    saving = true;
    statusLine.textContent = "Saving…";
    try {
      const response = await fetch(data.urls.save, {
        method: "PUT",
        headers: {"Content-Type": "application/json", "X-CSRFToken": data.csrf_token},
        body: JSON.stringify(payload(version || image.version)),
        credentials: "same-origin",
      });
      const body = await response.json();
      if (response.status === 409) { showConflict(body); return false; }
      if (!response.ok) { statusLine.textContent = `Not saved: ${body.detail}`; return false; }
      conflictBanner.hidden = true;
      theirsLayer.replaceChildren();
      if (thenNext) { dirty = false; window.location.assign(data.urls.next); return true; }
      load(body);
      render();
      statusLine.textContent += " · saved";
      delete history.dataset.loaded;  // this save replaced a version: read the list again when shown
      showHistory();
      return true;
    } catch (error) {
      statusLine.textContent = `Not saved (${error}); your boxes are still here, try again.`;
      return false;
    } finally {
      saving = false;
    }
  }

  // Leave this image for now: the queue passes it over until the rest are done.
  function skip() {
    if (dirty && !window.confirm("Skip without saving your changes?")) return;
    dirty = false;
    window.location.assign(data.urls.skip);
  }

  // Approve what is on screen: unsaved changes (or an image never reviewed) are saved first, then the
  // status is set for the version just seen; if someone saved in between, their boxes are shown instead.
  async function approve() {
    if (saving) return;
    if ((dirty || image.status === "unreviewed") && !(await save(false))) return;
    const ok = await setStatus("approved");
    if (ok) { dirty = false; window.location.assign(nextAfterApproval); }
  }

  async function setStatus(status, comment = "") {
    saving = true;
    statusLine.textContent = status === "approved" ? "Approving…" : "Sending back…";
    try {
      const response = await fetch(data.urls.status, {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRFToken": data.csrf_token},
        body: JSON.stringify({status, version: image.version, comment}),
        credentials: "same-origin",
      });
      const body = await response.json();
      if (response.status === 409) { showConflict(body); return false; }
      if (!response.ok) { statusLine.textContent = `Not changed: ${body.detail}`; return false; }
      if (status !== "approved") {
        load(body); render(); statusLine.textContent += " · sent back to the queue";
        if (comment) showComment(await ownNewestComment() || {author: "you", text: comment});
      }
      return true;
    } catch (error) {
      statusLine.textContent = `Not changed (${error}); try again.`;
      return false;
    } finally {
      saving = false;
    }
  }

  // --- Comments ------------------------------------------------------------------------------------

  // The text as text nodes, with the members it names (@username, as the API lists them) in bold.
  function renderCommentText(element, text, mentions) {
    const named = new Set((mentions || []).map((name) => name.toLowerCase()));
    element.replaceChildren();
    let last = 0;
    for (const match of text.matchAll(/(?<![\w.@+-])@([\w.@+-]+)/g)) {
      let name = match[1];
      if (!named.has(name.toLowerCase())) name = name.replace(/[.+@-]+$/, "");
      if (!named.has(name.toLowerCase())) continue;
      element.append(text.slice(last, match.index));
      const strong = Object.assign(document.createElement("strong"), {className: "mention", textContent: `@${name}`});
      element.append(strong);
      last = match.index + 1 + name.length;
    }
    element.append(text.slice(last));
  }

  function showComment(comment) {
    const li = document.createElement("li");
    const who = document.createElement("span");
    who.className = "muted";
    who.textContent = `${comment.author || "a former member"}, just now`;
    const text = document.createElement("p");
    renderCommentText(text, comment.text, comment.mentions);  // text nodes, never markup
    li.append(who);
    if (comment.id) {  // one's own comment, just added: its author may delete or change it
      for (const [className, label] of [["comment-delete", "delete"], ["comment-edit", "edit"]]) {
        const button = document.createElement("button");
        Object.assign(button, {type: "button", className: `link ${className}`, textContent: label});
        button.dataset.url = data.urls.comment.replace("{}", comment.id);
        li.append(button);
      }
    }
    li.append(text);
    document.getElementById("comments").append(li);
  }

  // The status answer is the image, not the comment it added: read that back, so its author can delete it.
  async function ownNewestComment() {
    try {
      const response = await fetch(data.urls.comments, {credentials: "same-origin"});
      if (!response.ok) return null;
      return (await response.json()).reverse().find((comment) => comment.author === data.username) || null;
    } catch (error) {
      return null;
    }
  }

  // In place: a text area under the comment, saved with Ctrl+Enter or the button, Escape to leave it.
  function editComment(button) {
    const li = button.closest("li");
    const shown = li.querySelector("p");
    if (li.querySelector(".comment-editing")) return;
    const form = document.createElement("form");
    form.className = "comment-editing";
    const area = Object.assign(document.createElement("textarea"), {value: shown.innerText, rows: 3, maxLength: 2000});
    const save = Object.assign(document.createElement("button"), {type: "submit", textContent: "Save comment"});
    const cancel = Object.assign(document.createElement("button"), {type: "button", className: "link",
                                                                     textContent: "cancel"});
    const close = () => { form.remove(); shown.hidden = false; };
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const response = await fetch(button.dataset.url, {
          method: "PATCH", credentials: "same-origin", body: JSON.stringify({text: area.value}),
          headers: {"Content-Type": "application/json", "X-CSRFToken": data.csrf_token}});
        const body = await response.json();
        if (!response.ok) { statusLine.textContent = `Comment not changed: ${body.detail}`; return; }
        renderCommentText(shown, body.text, body.mentions);  // text nodes, never markup
        const when = li.querySelector(".muted");
        if (!when.textContent.endsWith("(edited)")) when.textContent += " (edited)";
        close();
      } catch (error) {
        statusLine.textContent = `Comment not changed (${error}); your text is still there, try again.`;
      }
    });
    form.append(area, save, cancel);
    shown.hidden = true;
    li.append(form);
    area.focus();
  }

  async function deleteComment(event) {
    const button = event.target.closest(".comment-delete");
    if (!button || !window.confirm("Delete this comment?")) return;
    try {
      const response = await fetch(button.dataset.url, {
        method: "DELETE", headers: {"X-CSRFToken": data.csrf_token}, credentials: "same-origin"});
      if (!response.ok) { statusLine.textContent = `Comment not deleted: ${(await response.json()).detail}`; return; }
      button.closest("li").remove();
    } catch (error) {
      statusLine.textContent = `Comment not deleted (${error}); try again.`;
    }
  }

  // --- Earlier versions of the boxes ---------------------------------------------------------------
  // Every save keeps the boxes it replaced (GET …/history/). Bringing a version back puts its boxes in
  // the editor as an ordinary change: saved like any other, undone with Ctrl+Z.

  const history = document.getElementById("history");

  async function showHistory() {
    if (!history.open || history.dataset.loaded) return;
    const list = document.getElementById("history-list");
    try {
      const response = await fetch(data.urls.history, {credentials: "same-origin"});
      const versions = await response.json();
      if (!response.ok) { list.textContent = `Not loaded: ${versions.detail}`; return; }
      history.dataset.loaded = "1";
      list.replaceChildren(...versions.map(versionItem));
      if (!versions.length) list.textContent = "None yet: no save has replaced any boxes of this image.";
    } catch (error) {
      list.textContent = `Not loaded (${error}); close and open this again to retry.`;
    }
  }

  function versionItem(version) {
    const li = document.createElement("li");
    const who = document.createElement("span");
    const saved = version.saved_at ? `saved by ${version.saved_by || "a former member"} ${ago(version.saved_at)}`
                                   : "from before the first save";
    who.textContent = `${version.boxes.length} box${version.boxes.length === 1 ? "" : "es"} ${saved}; ` +
      `replaced by ${version.replaced_by || "a former member"} ${ago(version.replaced_at)}` +
      (version.left_out ? ` (${version.left_out} of a deleted class cannot come back)` : "") + " ";
    const button = document.createElement("button");
    Object.assign(button, {type: "button", textContent: "Bring back"});
    button.addEventListener("click", () => bringBack(version));
    li.append(who, button);
    return li;
  }

  function bringBack(version) {
    change(() => {
      const used = new Set(version.boxes.map((b) => b.source_prediction).filter((id) => id));
      items = [
        ...version.boxes.map((b) => ({key: nextKey++, kind: "box", predictionId: b.source_prediction,
          cls: b.label_class, x: b.x, y: b.y, w: b.w, h: b.h, score: null})),
        ...items.filter((i) => i.kind === "prediction" && !used.has(i.predictionId)),
      ];
      selected = null;
    });
    statusLine.textContent += " · earlier boxes brought back: save to keep them, Ctrl+Z to undo";
  }

  function ago(iso) {
    const minutes = Math.floor((Date.now() - Date.parse(iso)) / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 60) return `${minutes} minute${minutes === 1 ? "" : "s"} ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} hour${hours === 1 ? "" : "s"} ago`;
    return `on ${new Date(iso).toLocaleDateString()}`;
  }

  async function addComment(event) {
    event.preventDefault();
    const field = document.getElementById("comment-text");
    if (!field.value.trim()) return;
    try {
      const response = await fetch(data.urls.comments, {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRFToken": data.csrf_token},
        body: JSON.stringify({text: field.value}),
        credentials: "same-origin",
      });
      const body = await response.json();
      if (!response.ok) { statusLine.textContent = `Comment not added: ${body.detail}`; return; }
      showComment(body);
      field.value = "";
    } catch (error) {
      statusLine.textContent = `Comment not added (${error}); your text is still there, try again.`;
    }
  }

  // Someone else saved first: show their boxes beside ours and let the reviewer choose; nothing is lost.
  function showConflict(body) {
    conflictBanner.hidden = false;
    conflictBanner.querySelector(".message").textContent = body.detail +
      ` Their ${body.current.boxes.length} box(es) are drawn dotted grey; yours are unchanged.`;
    theirsLayer.replaceChildren();
    const unit = pixelsPerScreenPixel();
    for (const b of body.current.boxes) {
      el("rect", {x: b.x, y: b.y, width: b.w, height: b.h, stroke: "#555", fill: "none", "stroke-width": 2 * unit,
        "stroke-dasharray": `${2 * unit} ${3 * unit}`}, theirsLayer);
    }
    conflictBanner.querySelector(".keep-mine").onclick = () => save(false, body.current.version);
    conflictBanner.querySelector(".take-theirs").onclick = () => {
      conflictBanner.hidden = true;
      theirsLayer.replaceChildren();
      load(body.current);
      render();
    };
    statusLine.textContent = "Not saved: someone else saved this image first.";
  }

  // --- Toolbar -------------------------------------------------------------------------------------

  // Two decimals, or up to four for a review threshold chosen between the slider's steps (0.1137).
  function thresholdText() {
    return Math.abs(threshold * 100 - Math.round(threshold * 100)) < 1e-6 ? threshold.toFixed(2)
      : String(Number(threshold.toFixed(4)));
  }

  thresholdInput.value = threshold;
  thresholdValue.textContent = thresholdText();
  thresholdInput.addEventListener("input", () => {
    threshold = parseFloat(thresholdInput.value);
    thresholdValue.textContent = thresholdText();
    localStorage.setItem(thresholdKey, JSON.stringify({project: data.project.score_threshold, value: threshold}));
    render();
  });
  for (const button of document.querySelectorAll("[data-class]")) {
    button.addEventListener("click", () => relabel(classes.findIndex((c) => c.id === Number(button.dataset.class)) + 1));
  }
  if (classSearch) {
    classSearch.addEventListener("focus", () => { matchAt = 0; showMatches(); });
    classSearch.addEventListener("input", () => { matchAt = 0; showMatches(); });
    classSearch.addEventListener("blur", () => { classSearch.value = ""; classMatches.hidden = true; });
    classSearch.addEventListener("keydown", (event) => {
      const step = {ArrowDown: 1, ArrowUp: -1}[event.key];
      if (step && matches.length) { matchAt = (matchAt + step + matches.length) % matches.length; showMatches(); }
      else if (event.key === "Enter") pickMatch(matchAt);
      else if (event.key === "Escape") closeMatches();
      else return;
      event.preventDefault();
    });
  }
  itemList.addEventListener("click", (event) => {
    const row = event.target.closest("li[data-key]");
    if (row) { selected = Number(row.dataset.key); render(); }
  });
  document.getElementById("undo").addEventListener("click", () => restore(undoStack, redoStack));
  document.getElementById("redo").addEventListener("click", () => restore(redoStack, undoStack));
  document.getElementById("save-next").addEventListener("click", () => save(true));
  document.getElementById("skip").addEventListener("click", skip);
  document.getElementById("comment-form").addEventListener("submit", addComment);
  document.getElementById("comments").addEventListener("click", (event) => {
    const edit = event.target.closest(".comment-edit");
    if (edit) editComment(edit); else deleteComment(event);
  });
  history.addEventListener("toggle", showHistory);
  if (data.can_approve) {
    document.getElementById("approve-next").addEventListener("click", approve);
    sendBack.addEventListener("click", () => {
      if (dirty && !window.confirm("Send back without saving your changes?")) return;
      const why = window.prompt("Why does it go back? (optional: shown to whoever reviews it next)", "");
      if (why === null) return;  // cancelled
      setStatus("unreviewed", why);
    });
  }
  document.getElementById("accept-all").addEventListener("click", keys["A"]);
  document.getElementById("help-toggle").addEventListener("click", keys["?"]);
  window.addEventListener("beforeunload", (event) => { if (dirty) event.preventDefault(); });
  window.addEventListener("resize", render);

  load(image);
  focusFromAddress();
  setLight(light);
  render();
  window.reviewEditor = {items: () => items, selected: () => selected};  // for browser tests and the console
})();
