// The order list's keyboard and bulk bar (issue 17). A file, not inline script: the CSP forbids
// inline script. Keys: "/" search, j / k next / previous order, x select it, a select every
// order on the page, b the bulk bar, Enter open the focused order.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#order-rows tr.order-row"));
  }

  function typing(target) {
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "select" || tag === "textarea" || target.isContentEditable;
  }

  function currentRow() {
    var active = document.activeElement;
    return active && active.closest ? active.closest("tr.order-row") : null;
  }

  function focusRow(row) {
    if (!row) return;
    var box = row.querySelector("input.row-select");
    document.querySelectorAll("tr.order-row.focused").forEach(function (other) { other.classList.remove("focused"); });
    row.classList.add("focused");
    (box || row).focus();
    row.scrollIntoView({ block: "nearest" });
  }

  function updateCount() {
    var count = document.querySelectorAll("input.row-select:checked").length;
    var label = document.getElementById("bulk-selected-count");
    if (label) label.textContent = count ? "（" + count + "）" : "";
  }

  function showParams() {
    var action = document.getElementById("bulk-action");
    if (!action) return;
    document.querySelectorAll(".bulk-param").forEach(function (span) {
      var wanted = (span.getAttribute("data-for") || "").split(" ").indexOf(action.value) !== -1;
      span.hidden = !wanted;
      span.querySelectorAll("input, select").forEach(function (field) { field.disabled = !wanted; });
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && typing(event.target)) {
      event.target.blur();
      return;
    }
    if (typing(event.target) && !(event.target.classList && event.target.classList.contains("row-select"))) return;
    var list = rows();
    var row = currentRow();
    var index = row ? list.indexOf(row) : -1;
    switch (event.key) {
      case "/":
        var search = document.getElementById("q");
        if (search) { event.preventDefault(); search.focus(); search.select(); }
        break;
      case "j":
        event.preventDefault();
        focusRow(list[Math.min(index + 1, list.length - 1)]);
        break;
      case "k":
        event.preventDefault();
        focusRow(list[Math.max(index - 1, 0)]);
        break;
      case "x":
        if (row) {
          event.preventDefault();
          var box = row.querySelector("input.row-select");
          box.checked = !box.checked;
          updateCount();
        }
        break;
      case "a":
        var all = document.getElementById("select-all");
        if (all) { event.preventDefault(); all.click(); }
        break;
      case "b":
        var bar = document.getElementById("bulk-action");
        if (bar) { event.preventDefault(); bar.focus(); }
        break;
      case "Enter":
        if (row) {
          var link = row.querySelector("a");
          if (link) { event.preventDefault(); link.click(); }
        }
        break;
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      document.querySelectorAll("input.row-select").forEach(function (box) { box.checked = event.target.checked; });
    }
    if (event.target.id === "bulk-action") showParams();
    updateCount();
  });

  document.addEventListener("DOMContentLoaded", function () { showParams(); updateCount(); });
  document.addEventListener("htmx:afterSwap", updateCount);
})();
