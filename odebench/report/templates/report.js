// Sortable tables and figures that enlarge on click; no network, no library.
(function () {
  "use strict";
  function key(cell) {
    var text = cell.textContent.trim().replace(/^[×x]/, "");
    var number = parseFloat(text);
    return isNaN(number) || !/^[-+]?[0-9.]/.test(text) ? text.toLowerCase() : number;
  }
  function compare(a, b) {
    if (a === "" || b === "") { return a === b ? 0 : (a === "" ? 1 : -1); }
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var up = !th.classList.contains("sorted-up");
        heads.forEach(function (other) { other.classList.remove("sorted-up", "sorted-down"); });
        th.classList.add(up ? "sorted-up" : "sorted-down");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var order = compare(key(r.cells[column]), key(s.cells[column]));
          return up ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  document.querySelectorAll("figure img").forEach(function (img) {
    img.addEventListener("click", function () { img.parentNode.classList.toggle("zoomed"); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("figure.zoomed").forEach(function (f) { f.classList.remove("zoomed"); });
    }
  });
})();
