// eventbridge UI: live updates through server-sent events; htmx refreshes the changed fragments.
(function () {
  "use strict";

  function watch(element) {
    var url = element.getAttribute("data-watch");
    var dot = document.getElementById("live");
    var timer = null;
    var source = new EventSource(url);
    source.onopen = function () { if (dot) dot.classList.add("on"); };
    source.onerror = function () { if (dot) dot.classList.remove("on"); };
    source.onmessage = function () {
      // Coalesce bursts of changes into one refresh.
      if (timer) return;
      timer = setTimeout(function () {
        timer = null;
        htmx.trigger(document.body, "eb-changed");
      }, 200);
    };
  }

  function streamLogs(pre) {
    var url = pre.getAttribute("data-log-url");
    var source = new EventSource(url);
    var started = false;
    source.onmessage = function (message) {
      var entry;
      try { entry = JSON.parse(message.data).result; } catch (e) { return; }
      if (!entry) return;
      if (!started) { pre.textContent = ""; started = true; }
      pre.textContent += entry.podName + ": " + entry.content + "\n";
      pre.scrollTop = pre.scrollHeight;
    };
    // The server ends the stream when the workflow has finished: do not reconnect and repeat it.
    source.onerror = function () { source.close(); };
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-watch]").forEach(watch);
    document.querySelectorAll("pre[data-log-url]").forEach(streamLogs);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
