// Behaviour shared by every page. Kept in a file (not inline) so the CSP can forbid inline script.
document.addEventListener("htmx:responseError", function (event) {
  // A refused request still shows the user something rather than failing silently.
  var box = document.getElementById("messages") || document.createElement("ul");
  box.id = "messages";
  box.className = "messages";
  var item = document.createElement("li");
  item.className = "msg error";
  item.textContent = (document.documentElement.lang === "en")
    ? "The server refused the request (" + event.detail.xhr.status + "). Reload and try again."
    : "服务器拒绝了请求（" + event.detail.xhr.status + "），请刷新后重试。";
  box.appendChild(item);
  var main = document.getElementById("main");
  if (main && !box.parentNode) main.prepend(box);
});
