// The board polls itself (hx-trigger "every 5s" on #board-body). A poll while the supervisor is
// choosing an assignee or typing would replace the form under their hands: skip that poll, the
// next one comes a few seconds later.
document.addEventListener("htmx:beforeRequest", function (event) {
  var board = document.getElementById("board-body");
  if (!board || event.detail.elt !== board) return;
  var active = document.activeElement;
  if (active && board.contains(active) && /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName)) {
    event.preventDefault();
  }
});
