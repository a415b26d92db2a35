/* Live change notices (server-sent events from /api/v1/stream).

   Why not dash-extensions' EventSource: it reopens its connection whenever Dash re-renders
   it — after every message — and what the server sent meanwhile was lost. Here each marker
   element (data-opsmap-stream) gets one EventSource for as long as it is on the page, opened
   from the notice id the page was rendered at (data-since), or from the last one received
   when a re-render replaces the marker; every message becomes the data of the dcc.Store
   named by data-store (panels' callbacks read it) and goes to assets/layers.js (which patches
   the layers it names). The browser's own reconnects resume via Last-Event-ID.

   Layers are patched on every message; the store — whose callbacks redraw the panels,
   numbers and feed, a server round trip and a summary each — is set at most once per
   PANELS_MS: the first message after a quiet spell at once, the newest of a busy spell at
   the end of it (every callback reads only its data version, so nothing is lost). A
   message with an urgent alert is never held: the big screen interrupts on it. */
(function () {
    "use strict";
    var PANELS_MS = 1000;
    var open = {};
    var pending = null;

    function toStore(entry, data, urgent) {
        var wait = entry.storeAt + PANELS_MS - Date.now();
        entry.held = data;
        if (urgent || wait <= 0) {
            clearTimeout(entry.timer);
            entry.timer = null;
            flush(entry);
        } else if (!entry.timer) {
            entry.timer = setTimeout(function () {
                entry.timer = null;
                flush(entry);
            }, wait);
        }
    }

    function flush(entry) {
        entry.storeAt = Date.now();
        if (window.dash_clientside && window.dash_clientside.set_props) {
            window.dash_clientside.set_props(entry.store, {data: entry.held});
        }
    }

    function connect(el, since) {
        var store = el.getAttribute("data-store");
        var url = el.getAttribute("data-opsmap-stream") + (since ? "?since=" + encodeURIComponent(since) : "");
        var entry = {source: new EventSource(url), el: el, last: since, store: store, storeAt: 0, timer: null};
        entry.source.onmessage = function (e) {
            var message = JSON.parse(e.data);
            entry.last = e.lastEventId || entry.last;
            if (window.opsmap && window.opsmap.layers) {
                window.opsmap.layers.notice(message);  // assets/layers.js: patch the named layers
            }
            toStore(entry, e.data, (message.urgent || []).length > 0);
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
                clearTimeout(known.timer);
            }
            connect(el, known ? known.last : el.getAttribute("data-since"));
        });
        Object.keys(open).forEach(function (store) {
            if (!document.body.contains(open[store].el)) {
                open[store].source.close();
                clearTimeout(open[store].timer);
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
