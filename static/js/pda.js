// The packing station (PDA). Keyboard-wedge scanners type the code and press Enter, so the scan
// field must always have focus; a refusal is shown in red and sounded, a match beeps once.
(function () {
  "use strict";
  var form = document.getElementById("scan-form");
  if (!form) return;
  var input = document.getElementById("scan-input");
  var currentOrder = document.getElementById("scan-order");
  var refuseSound = new Audio(form.dataset.refuseSound);
  var okSound = new Audio(form.dataset.okSound);

  function keepFocus() {
    // Leave focus alone only while someone types into another field on purpose.
    var active = document.activeElement;
    if (active && active !== input && (active.tagName === "INPUT" || active.tagName === "TEXTAREA") && active.type !== "hidden") return;
    input.focus();
  }

  function play(sound) {
    try {
      sound.currentTime = 0;
      var played = sound.play();
      if (played && played.catch) played.catch(function () {});
    } catch (e) { /* a device without audio still shows the colour */ }
  }

  function afterStationSwap() {
    var station = document.getElementById("station");
    if (!station) return;
    currentOrder.value = station.dataset.order || "";
    document.body.classList.remove("flash-refused");
    if (station.dataset.outcome === "refused") {
      void document.body.offsetWidth; // restart the flash animation
      document.body.classList.add("flash-refused");
      play(refuseSound);
      if (navigator.vibrate) navigator.vibrate([200, 80, 200]);
    } else if (station.dataset.outcome === "ok") {
      play(okSound);
    }
    if (station.dataset.order && window.location.pathname.indexOf("/pda/" + station.dataset.order + "/") !== 0) {
      window.history.replaceState(null, "", "/pda/" + encodeURIComponent(station.dataset.order) + "/");
    }
  }

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt === form && !input.value.trim()) event.preventDefault();
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt === form) input.value = "";
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    afterStationSwap();
    keepFocus();
  });
  input.addEventListener("blur", function () { window.setTimeout(keepFocus, 150); });
  document.addEventListener("click", function () { window.setTimeout(keepFocus, 150); });
  afterStationSwap();
  keepFocus();
})();
