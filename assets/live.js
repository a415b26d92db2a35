/* Live change notices (server-sent events from /api/v1/stream).

   Why not dash-extensions' EventSource: it reopens its connection whenever Dash re-renders
   it — after every message — and what the server sent meanwhile was lost. Here each marker
   element (data-opsmap-stream) gets one EventSource for as long as it is on the page, opened
   from the notice id the page was rendered at (data-since), or from the last one received
   when a re-render replaces the marker; every message becomes the data of the dcc.Store
   named by data-store (panels' callbacks read it) and goes to assets/layers.js (which patches
   the layers it names). The browser's own reconnects resume via Last-Event-ID.

   Layers are patched on every message, and the message goes to the store once they are (or
   after LAYERS_FIRST_MS): the panels' callbacks are the heaviest requests a notice causes
   (a summary each), and sent beside the patches they slowed the map's change by a third
   at 100,000 points (bench/map.py, stage "fetch"). The store — whose callbacks redraw the panels,
   numbers and feed, a server round trip and a summary each — is set at most once per
   PANELS_MS (the first message after a quiet spell at once, a message with an urgent alert
   at once, the newest of a busy spell at the end of it) and never while the callbacks are
   still answering the previous one: Dash drops an answer in flight when its input changes
   again, so notices coming faster than the answer would leave the panels empty for good.
   The callbacks write into the marker's data-ack element when they answer; the newest held
   notice then goes (its urgent alerts merged with those of the notices it replaced, so the
   big screen misses none). Every callback reads only its data version, so nothing is lost.
   While the input named by data-paused-by holds a value (a moment typed or picked), notices
   leave the store alone: that moment's answer is never dropped for a live tick. */
(function () {
    "use strict";
    var PANELS_MS = 1000;
    var ANSWER_MAX_MS = 20000;  // an answer lost on the way (a reload of the server): send anyway
    var LAYERS_FIRST_MS = 500;  // the panels wait at most this long for the map's patches
    var open = {};
    var pending = null;

    function merged(older, newer) {
        if (!older) {
            return newer;
        }
        var a = JSON.parse(older), b = JSON.parse(newer);
        b.urgent = (a.urgent || []).concat(b.urgent || []);
        return JSON.stringify(b);
    }

    function paused(entry) {
        var input = entry.pausedBy && document.getElementById(entry.pausedBy);
        return Boolean(input && input.value);
    }

    function toStore(entry, data) {
        entry.held = merged(entry.held, data);
        schedule(entry);
    }

    function schedule(entry) {
        if (!entry.held || entry.timer) {
            return;
        }
        if (entry.waiting && Date.now() - entry.waiting < ANSWER_MAX_MS) {
            return;  // the callbacks are answering: sent when their ack arrives
        }
        var urgent = (JSON.parse(entry.held).urgent || []).length > 0;
        var wait = urgent ? 0 : entry.storeAt + PANELS_MS - Date.now();
        if (wait <= 0) {
            flush(entry);
        } else {
            entry.timer = setTimeout(function () {
                entry.timer = null;
                schedule(entry);
            }, wait);
        }
    }

    function flush(entry) {
        var data = entry.held;
        entry.held = null;
        if (paused(entry)) {
            return;  // a moment is shown: live notices do not concern its panels
        }
        entry.storeAt = Date.now();
        entry.waiting = Date.now();
        if (window.dash_clientside && window.dash_clientside.set_props) {
            window.dash_clientside.set_props(entry.store, {data: data});
        }
    }

    function answered(records) {
        Object.keys(open).forEach(function (store) {
            var entry = open[store];
            var ack = entry.ack && document.getElementById(entry.ack);
            if (entry.waiting && ack && records.some(function (r) { return ack.contains(r.target); })) {
                entry.waiting = 0;
                schedule(entry);
            }
        });
    }

    function connect(el, since) {
        var store = el.getAttribute("data-store");
        var url = el.getAttribute("data-opsmap-stream") + (since ? "?since=" + encodeURIComponent(since) : "");
        var entry = {source: new EventSource(url), el: el, last: since, store: store, storeAt: 0, timer: null,
                     held: null, waiting: 0, ack: el.getAttribute("data-ack"), order: Promise.resolve(),
                     pausedBy: el.getAttribute("data-paused-by")};
        entry.source.onmessage = function (e) {
            var message = JSON.parse(e.data);
            var patched = null;
            entry.last = e.lastEventId || entry.last;
            if (window.opsmap && window.opsmap.layers) {
                patched = window.opsmap.layers.notice(message);  // assets/layers.js: patch the named layers
            }
            if ((message.urgent || []).length) {  // assets/screen.js queues them for its banner
                document.dispatchEvent(new CustomEvent("opsmap:urgent", {detail: message.urgent}));
            }
            var later = new Promise(function (resolve) { setTimeout(resolve, LAYERS_FIRST_MS); });
            entry.order = entry.order.then(function () {  // in the order they came
                return Promise.race([patched, later]);
            }).then(function () { toStore(entry, e.data); });
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

    new MutationObserver(function (records) {
        answered(records);
        later();
    }).observe(document.documentElement, {childList: true, subtree: true, characterData: true});
    later();
})();
