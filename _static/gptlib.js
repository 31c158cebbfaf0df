// gptlib book: click a figure to see it at full size; search snippets from the article text only.
(function () {
  "use strict";
  function zoom(img) {
    var box = document.createElement("div");
    box.className = "gptlib-zoom";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", "figure at full size (click or Escape to close)");
    var big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt || "";
    box.appendChild(big);
    function close() { box.remove(); document.removeEventListener("keydown", onKey); }
    function onKey(e) { if (e.key === "Escape") close(); }
    box.addEventListener("click", close);
    document.addEventListener("keydown", onKey);
    document.body.appendChild(box);
  }
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t && t.tagName === "IMG" && t.closest("div.cell_output")) { zoom(t); }
  });

  // Sphinx's search summarises a page from its [role=main] element, which in this theme starts with the
  // download buttons (".ipynb .pdf"); summarise from the article itself instead.
  function articleText(htmlString, anchor) {
    var doc = new DOMParser().parseFromString(htmlString, "text/html");
    doc.querySelectorAll(".headerlink, script, style").forEach(function (el) { el.remove(); });
    if (anchor) {
      var a = doc.getElementById(anchor.replace(/^#/, ""));
      if (a) { return a.textContent; }
    }
    var main = doc.querySelector("article.bd-article") || doc.querySelector('[role="main"]');
    return main ? main.textContent : "";
  }
  // A hidden cell that holds an exercise's solution says so: "Show solution", not "Show code cell source"
  // like a hidden plotting cell.
  function labelSolutions() {
    document.querySelectorAll("div.cell.tag_hide-input").forEach(function (cell) {
      var code = cell.querySelector(".cell_input pre");
      if (!code || code.textContent.indexOf("BEGIN SOLUTION") < 0) { return; }
      cell.classList.add("gptlib-solution");
      var shown = cell.querySelector("summary .collapsed"), hidden = cell.querySelector("summary .expanded");
      if (shown) { shown.textContent = "Show solution"; }
      if (hidden) { hidden.textContent = "Hide solution"; }
    });
  }
  document.addEventListener("DOMContentLoaded", labelSolutions);

  // "Predict, then measure" exercises: the measuring cell's printed result stays folded until the reader
  // asks for it, so it does not answer the question printed just above it.
  function foldMeasurements() {
    document.querySelectorAll("div.exercise").forEach(function (ex) {
      var title = ex.querySelector(".admonition-title");
      if (!title || title.textContent.indexOf("Predict, then measure") < 0) { return; }
      var cell = ex.nextElementSibling;
      var out = cell && cell.matches("div.cell") ? cell.querySelector(":scope > div.cell_output") : null;
      if (!out || out.closest("details")) { return; }
      var box = document.createElement("details");
      box.className = "gptlib-measured";
      var summary = document.createElement("summary");
      summary.textContent = "Show the measured result (make your prediction first)";
      box.appendChild(summary);
      out.parentNode.insertBefore(box, out);
      box.appendChild(out);
    });
  }
  document.addEventListener("DOMContentLoaded", foldMeasurements);

  document.addEventListener("DOMContentLoaded", function () {
    // searchtools.js declares `const Search` (a global binding, not a property of window)
    if (typeof Search !== "undefined" && typeof Search.htmlToText === "function") {
      Search.htmlToText = articleText;  // eslint-disable-line no-undef
    }
  });
})();
