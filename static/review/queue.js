// The queue page's bulk actions: tick images (or a whole page), then act on them or on every match.
"use strict";

(function () {
  const form = document.getElementById("bulk");
  if (!form) return;
  const boxes = () => [...document.querySelectorAll("#queue input.select")];
  const selectPage = document.getElementById("select-page");
  const scope = document.getElementById("bulk-scope");
  const count = document.getElementById("selected-count");
  const actions = [...form.querySelectorAll("button[name=action]")];

  function refresh() {
    const ticked = boxes().filter((box) => box.checked).length;
    const matching = scope.value === "matching";
    count.textContent = matching ? "" : `${ticked} selected`;
    // Nothing ticked: nothing to act on (the server would say so, after a round trip).
    actions.forEach((button) => { button.disabled = !matching && ticked === 0; });
    selectPage.checked = ticked > 0 && ticked === boxes().length;
    boxes().forEach((box) => box.closest(".thumb").classList.toggle("selected", box.checked));
  }

  selectPage.addEventListener("change", () => {
    boxes().forEach((box) => { box.checked = selectPage.checked; });
    refresh();
  });
  scope.addEventListener("change", refresh);
  document.getElementById("queue").addEventListener("change", (event) => {
    if (event.target.matches("input.select")) refresh();
  });
  refresh();
})();
