/* Live change notices (server-sent events from /api/v1/stream).

   Why not dash-extensions' EventSource: it reopens its connection whenever Dash re-renders
   it — after every message — and what the server sent meanwhile was lost. Here each marker
   element (data-opsmap-stream) gets one EventSource for as long as it is on the page, opened
   from the notice id the page was rendered at (data-since), or from the last one received
   when a re-render replaces the marker; every message becomes the data of the dcc.Store
   named by data-store (panels' callbacks read it) and goes to assets/layers.js (which patches
   the layers it names). The browser's own reconnects resume via Last-Event-ID. */
(function () {
    "use strict";
    var open = {};
    var pending = null;

    function connect(el, since) {
        var store = el.getAttribute("data-store");
        var url = el.getAttribute("data-opsmap-stream") + (since ? "?since=" + encodeURIComponent(since) : "");
        var entry = {source: new EventSource(url), el: el, last: since};
        entry.source.onmessage = function (e) {
            entry.last = e.lastEventId || entry.last;
            if (window.opsmap && window.opsmap.layers) {
                window.opsmap.layers.notice(JSON.parse(e.data));  // assets/layers.js: patch the named layers
            }
            if (window.dash_clientside && window.dash_clientside.set_props) {
                window.dash_clientside.set_props(store, {data: e.data});
            }
        };
        open[store] = entry;
    }

    function sync() {
        pending = null;
        document.querySelectorAll("[data-opsmap-stream]").forEach(function (el) {
            var store = el.getAttribute("data-store");
            var known = open[store];
            if (known && known.el === el) {
                return;
            }
            if (known) {
                known.source.close();
            }
            connect(el, known ? known.last : el.getAttribute("data-since"));
        });
        Object.keys(open).forEach(function (store) {
            if (!document.body.contains(open[store].el)) {
                open[store].source.close();
                delete open[store];
            }
        });
    }

    function later() {
        if (pending === null) {
            pending = setTimeout(sync, 50);
        }
    }

    new MutationObserver(later).observe(document.documentElement, {childList: true, subtree: true});
    later();
})();
