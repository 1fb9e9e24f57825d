// The project page's Classes table: each class's human boxes on reviewed training and held-out images, read
// from the API when the table is first shown (on a large project, counting takes longer than the page).
"use strict";

(function () {
  const details = document.getElementById("class-counts");
  if (!details) return;
  const table = details.querySelector("table");
  const counting = details.querySelector(".counting");
  let asked = false;

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function notice(text, title) {
    const span = document.createElement("span");
    span.className = "notice";
    span.textContent = text;
    if (title) span.title = title;
    return span;
  }

  function row(counts) {
    const tr = document.createElement("tr");
    tr.dataset.classId = counts.id;
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.setProperty("--chip", counts.colour);
    chip.textContent = counts.name;
    const name = cell("");
    name.append(chip);
    const notes = cell("", "note");
    if (!counts.boxes_training) notes.append(notice("nothing to learn it from yet"));
    if (!counts.judged) {
      if (notes.childNodes.length) notes.append("; ");
      notes.append(notice("not judged: no held-out box",
        "COCO's mAP leaves out a class with no held-out box: a fine-tune worse on it can still be promoted"));
    }
    // An image's split is fixed when it is added: where one side has no box yet, the images of that side
    // are the ones to review.
    const side = !counts.boxes_training && counts.judged ? "train" : counts.boxes_training && !counts.judged ? "holdout" : "";
    const more = document.createElement("a");
    more.href = `${details.dataset.queueUrl}?status=unreviewed&label_class=${counts.id}` + (side ? `&split=${side}` : "");
    more.textContent = {train: "find training images of it to review", holdout: "find held-out images of it to review"}[side] ||
      "find more to review";
    more.title = "Unreviewed images where the active model shows it, or with a box of it" +
      (side ? `, among the ${side === "train" ? "training" : "held-out"} images` : ": reviewing them adds to both columns");
    const link = cell("");
    link.append(more);
    tr.append(name, cell(`${counts.boxes_training} (${counts.images_training})`, "training"),
              cell(`${counts.boxes_holdout} (${counts.images_holdout})`, "holdout"), notes, link);
    return tr;
  }

  async function load() {
    if (asked || !details.open) return;
    asked = true;
    try {
      const response = await fetch(details.dataset.url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      table.tBodies[0].replaceChildren(...(await response.json()).map(row));
      table.hidden = false;
      counting.hidden = true;
    } catch (error) {
      counting.textContent = `The boxes of each class could not be counted: ${error.message}.`;
      asked = false;  // closing and opening the table again asks again
    }
  }

  details.addEventListener("toggle", load);
  load();
})();
