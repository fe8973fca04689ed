// Portcullis console: enhancements only. Every page works without this file.
"use strict";

// Forms marked data-confirm ask before they are sent (deletions, revocations).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Elements marked data-live="/path" are refreshed from that path every few seconds.
function refresh(element) {
  var url = element.getAttribute("data-live");
  fetch(url, { credentials: "same-origin", redirect: "error", headers: { "Accept": "text/html" } })
    .then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.text();
    })
    .then(function (html) {
      element.innerHTML = html;
      element.removeAttribute("data-stale");
    })
    .catch(function () {
      element.setAttribute("data-stale", "true");
    });
}

document.addEventListener("DOMContentLoaded", function () {
  var live = document.querySelectorAll("[data-live]");
  live.forEach(function (element) {
    var every = parseInt(element.getAttribute("data-every") || "2000", 10);
    window.setInterval(function () { refresh(element); }, every);
  });
});
