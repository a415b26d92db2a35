/* Map layers, loaded and kept current in the browser (window.opsmap.layers).

   A page's callback puts its layers' URLs in the store "<page>-sources"; show() loads each
   layer whole into its GeoJSON component and remembers the version it got (the
   X-Opsmap-Version header). On a live page a change notice naming a layer (notice(), from
   assets/live.js) — and, for layers that change with time alone, a timer (twice per
   OPSMAP_MAP_REFRESH_S) — then asks for a patch from that version (base=…): the server
   sends only the features that changed or went away, which are merged here. Steps run one
   at a time per layer, in order; a step begun for an earlier street, filter or moment is
   dropped. A patch the server cannot make (it no longer knows the version) comes back whole.
   A layer whose URL a new street, filter or moment leaves as it was (the basemap and the
   boundaries: no moment changes them, so their URLs name none) is kept as drawn, not loaded again.

   Clustered layers (sources.cluster: the cases, up to 100,000 points) are loaded, patched
   and indexed by the cluster worker (assets/worker/clusters.js), off the main thread; their
   GeoJSON component receives only the clusters and points of the map's view, asked again
   whenever the view moves (view(), from the same callback as show()). A patch is
   drawn before the worker re-indexes the layer (its new points on their own), then again
   clustered once the patches pause (settleLater).

   Every layer of points is drawn through Dash (its GeoJSON component) the first time; after
   that assets/map.js changes only the markers that changed, in the same Leaflet layer
   (map.redraw) — after a patch, and after another moment, committee or filter too. Through
   Dash, dash-leaflet made every marker of the layer again for a change of one: the longest
   main-thread task of a live page, 50-77 ms with the CPU throttled 2x.
   Layers of lines and areas (the basemap, the boundaries) never change once drawn.

   First paint: the page's HTML carries the sources it opens on (<script id="opsmap-prefetch">,
   dashboard/app.py) and runs this file in its head, so they are fetched (a clustered layer
   by the worker, which also indexes it) while Dash's scripts load and boot; show() then
   takes them instead of asking again. Such an answer may be
   older than the notice the page's live stream starts from, so on a live page it is
   followed by a patch step once the layers are drawn (catchUp).

   Timings: each change notice's way to the screen, stage by stage, is kept for the newest
   TIMINGS notices in window.opsmap.timings (epoch ms): read and committed by ingest, sent by
   the server's change stream (from the notice), received here, and per layer its patch fetched, merged (and indexed, by the
   worker) and drawn (two frames after the map got it). bench/map.py prints them. */
(function () {
    "use strict";
    var geo = window.opsmapGeo;  // assets/geojson.js
    var WORKER_URL = new URL("worker/clusters.js", document.currentScript.src).href;
    var VIEW_MARGIN = 0.25;  // clusters are asked for this much beyond each edge of the view
    var generation = 0;
    var current = null;  // {live: bool, layers: {key: entry}}
    var timer = null;
    var early = {};  // url → {answer: promise of the first answer, started from the page's HTML, clustered}
    var view = null;  // {bbox: [w, s, e, n], zoom} of the page's map
    var worker = null;
    var calls = {};
    var lastCall = 0;
    var TIMINGS = 50;
    var SETTLE_MS = 300;
    var SETTLE_MAX_MS = 2000;
    var CATCH_UP_MAX_MS = 1000;
    var timings = [];

    function ask(op, args) {  // a message to the cluster worker; a promise of its answer
        if (!worker) {
            worker = new Worker(WORKER_URL);
            worker.onmessage = function (e) {
                var call = calls[e.data.id];
                delete calls[e.data.id];
                if (e.data.error) {
                    call.reject(new Error(e.data.error));
                } else {
                    call.resolve(e.data.result);
                }
            };
            worker.onerror = function (e) {  // the worker itself failed: nothing it was asked will be answered
                var pending = calls;
                calls = {};
                worker = null;  // the next question starts a new one (its layers then load whole again)
                Object.keys(pending).forEach(function (id) {
                    pending[id].reject(new Error("cluster worker: " + (e.message || "failed")));
                });
            };
        }
        return new Promise(function (resolve, reject) {
            lastCall += 1;
            calls[lastCall] = {resolve: resolve, reject: reject};
            worker.postMessage(Object.assign({id: lastCall, op: op}, args));
        });
    }

    function load(url, cluster) {  // a layer whole: {body, version}, or {version} when the worker keeps it
        return cluster ? ask("load", {url: url, options: cluster}) : geo.fetchAnswer(url);  // fetched by the worker
    }

    function draw(entry) {  // a clustered layer: what the worker has in the map's view
        if (!view || !entry.version) {
            return Promise.resolve();
        }
        var drawing = entry.drawing = (entry.drawing || 0) + 1;
        return ask("view", {url: entry.url, bbox: view.bbox, zoom: view.zoom}).then(function (features) {
            if (entry.generation === generation && entry.drawing === drawing) {
                set(entry, {type: "FeatureCollection", features: features});
            }
        });
    }

    function set(entry, fc) {
        var map = window.opsmap.map;  // assets/map.js
        if (fc && map.redraw(entry.claim, fc)) {
            return;  // only the changed markers, in the layer Dash drew last
        }
        var id = {type: entry.page + "-layer", id: entry.key};
        entry.claim = map.claim(id);
        window.dash_clientside.set_props(id, {data: fc});
    }

    function render(entry) {
        return entry.cluster ? draw(entry) : set(entry, entry.fc);
    }

    function enqueue(entry, step) {
        entry.queue = entry.queue.then(function () {
            return entry.generation === generation ? step() : null;
        }).catch(function (err) {
            entry.version = null;  // the next step loads the layer whole
            console.warn("opsmap layer " + entry.key + ": " + err.message);
        });
        return entry.queue;
    }

    function accept(entry, fc, version) {
        entry.fc = fc;
        entry.version = version;
        return render(entry);
    }

    function prefetch() {
        var named = document.getElementById("opsmap-prefetch");
        var sources = JSON.parse(named ? named.textContent : "null");
        var clustered = function (key) { return Boolean(sources.cluster && sources.cluster[key]); };
        Object.keys((sources && sources.layers) || {}).sort(function (a, b) {  // the worker's first: its
            return clustered(b) - clustered(a);  // scripts and the largest layer then queue behind no others
        }).forEach(function (key) {
            var url = sources.layers[key];
            var cluster = sources.cluster && sources.cluster[key];
            if (url) {
                early[url] = {answer: load(url, cluster), clustered: Boolean(cluster)};
                early[url].answer.catch(function () {});  // whole() asks again; not an unhandled rejection
            }
        });
    }

    function whole(entry, started) {  // started: the answer the page's HTML asked for, if any
        var retry = function () { return load(entry.url, entry.cluster); };
        return (started ? started.catch(retry) : retry()).then(function (got) {
            if (entry.generation === generation) {
                return accept(entry, got.body, got.version);
            }
        });
    }

    // The worker re-indexes a clustered layer once its patches pause for SETTLE_MS (at the latest
    // SETTLE_MAX_MS after the first unindexed one), then the view is drawn clustered again: a
    // rebuild of 100,000 points takes 60-150 ms of a core (in the worker's indexer, which leaves
    // the worker free for patches meanwhile), too much to repeat for every notice of a busy street.
    function settleLater(entry) {
        var now = Date.now();
        entry.unsettled = entry.unsettled || now;
        clearTimeout(entry.settling);
        entry.settling = setTimeout(function () {
            entry.unsettled = 0;
            ask("settle", {url: entry.url}).then(function (reindexed) {
                return reindexed && entry.generation === generation ? draw(entry) : null;
            }).catch(function (err) { console.warn("opsmap layer " + entry.key + ": " + err.message); });
        }, Math.max(0, Math.min(SETTLE_MS, entry.unsettled + SETTLE_MAX_MS - now)));
    }

    function drawn(timing) {  // two frames after the map got the layer: it is on the screen
        if (timing) {
            requestAnimationFrame(function () {
                requestAnimationFrame(function () { timing.drawn = Date.now(); });
            });
        }
    }

    function patch(entry, version, timing) {  // timing: this layer's record of the notice that asked, if any
        if (!entry.version) {
            return whole(entry);
        }
        var url = entry.url + "&base=" + encodeURIComponent(entry.version) + (version ? "&v=" + version : "");
        var t = timing || {};
        if (entry.cluster) {
            return ask("patch", {url: entry.url, from: url}).then(function (got) {
                entry.version = got.version;
                t.fetched = got.fetched;
                t.merged = got.merged;
                if (got.changed && entry.generation === generation) {
                    return draw(entry).then(function () {  // the change first, then clustered with the rest
                        drawn(timing);
                        settleLater(entry);
                    });
                }
                drawn(timing);  // an earlier step had drawn this version
            });
        }
        return geo.fetchAnswer(url, {cache: "no-store"}).then(function (got) {
            t.fetched = Date.now();
            if (entry.generation !== generation) {
                return;
            }
            var next = geo.applied(entry.fc, entry.version, got);
            t.merged = Date.now();
            if (next.changed) {
                accept(entry, next.fc, next.version);
                drawn(timing);
            } else {
                entry.version = next.version;
                drawn(timing);
            }
        });
    }

    function forget(urls, kept) {  // clustered layers the worker holds that no page shows any more
        urls.forEach(function (url) {
            if (!kept[url]) {
                ask("drop", {url: url}).catch(function () {});  // a worker that failed holds nothing to drop
            }
        });
    }

    function show(sources) {
        var key = JSON.stringify(sources || null);
        if (current && current.key === key) {
            return;  // the same layers again (a callback re-run with the same inputs): keep them
        }
        var held = Object.keys(early).filter(function (url) { return early[url].clustered; });
        Object.keys((current && current.layers) || {}).forEach(function (k) {
            if (current.layers[k].cluster) {
                held.push(current.layers[k].url);
            }
        });
        generation += 1;
        clearInterval(timer);
        var previous = current;
        current = null;
        var entries = {};
        var kept = {};
        var behind = [];  // layers taken from the page's HTML: patched once the page is drawn
        var before = (previous && previous.layers) || {};
        Object.keys((sources && sources.layers) || {}).forEach(function (key) {
            var same = before[key];
            if (same && same.url && same.url === sources.layers[key] && same.page === sources.page && same.version) {
                same.generation = generation;  // the same answer (a layer that no moment changes): keep it drawn
                entries[key] = same;
                kept[same.url] = true;
                return;
            }
            var entry = {key: key, page: sources.page, url: sources.layers[key], generation: generation,
                         cluster: (sources.cluster && sources.cluster[key]) || null,
                         claim: same && same.page === sources.page ? same.claim : null,  // drawn in place
                         version: null, fc: null, queue: Promise.resolve()};
            entries[key] = entry;
            if (entry.url) {
                var started = early[entry.url] && early[entry.url].answer;
                kept[entry.url] = true;
                enqueue(entry, function () { return whole(entry, started); });
                if (started && sources.live) {
                    behind.push(entry);
                }
            } else {
                set(entry, null);
            }
        });
        forget(held, kept);
        early = {};  // what the page's first layers did not take would only grow stale
        catchUp(behind);
        if (!sources) {
            return;
        }
        current = {key: key, live: sources.live, layers: entries};
        if (sources.live && sources.refresh_s > 0) {
            timer = setInterval(function () {
                sources.timely.forEach(function (key) { update(key, null); });
            }, sources.refresh_s * 500);  // twice per period: the server's answers may be half a period old
        }
    }

    // Layers the page took from its HTML's early answers may miss a change that landed before the
    // notice its live stream starts from: each asks for a patch — once the layers are drawn and
    // the page is idle (at most CATCH_UP_MAX_MS later). Asked at once, the ten requests met the
    // first paint on the server and in the page: with them left out, it was 0.14 s sooner.
    function catchUp(entries) {
        Promise.all(entries.map(function (entry) { return entry.queue; })).then(function () {
            requestAnimationFrame(function () {
                requestAnimationFrame(function () {
                    var go = function () {
                        entries.forEach(function (entry) { enqueue(entry, function () { return patch(entry, null); }); });
                    };
                    return window.requestIdleCallback ? requestIdleCallback(go, {timeout: CATCH_UP_MAX_MS})
                        : setTimeout(go, 0);
                });
            });
        });
    }

    function moved(bounds, zoom) {  // the map's view (Leaflet bounds [[s, w], [n, e]]): redraw clustered layers
        if (!bounds || zoom === null || zoom === undefined) {
            return;
        }
        var s = bounds[0][0], w = bounds[0][1], n = bounds[1][0], e = bounds[1][1];
        var dx = (e - w) * VIEW_MARGIN, dy = (n - s) * VIEW_MARGIN;
        view = {bbox: [w - dx, s - dy, e + dx, n + dy], zoom: zoom};
        Object.keys((current && current.layers) || {}).forEach(function (key) {
            var entry = current.layers[key];
            if (entry.cluster) {
                draw(entry).catch(function (err) { console.warn("opsmap layer " + key + ": " + err.message); });
            }
        });
    }

    function update(key, version, timing) {
        var entry = current && current.live && current.layers[key];
        if (entry && entry.url) {
            return enqueue(entry, function () { return patch(entry, version, timing); });
        }
    }

    function notice(message) {  // a promise: settled when every layer it names is patched (or failed)
        var timing = {version: message.version, read: message.read * 1000, committed: message.at * 1000,
                      sent: message.sent * 1000, received: Date.now(), layers: {}};
        timings.push(timing);
        timings.splice(0, timings.length - TIMINGS);
        var named = message.layers || [];
        var clustered = function (key) {
            return Boolean(current && current.layers[key] && current.layers[key].cluster);
        };
        var patched = function (keys) {
            return Promise.all(keys.map(function (key) { return update(key, message.version, timing.layers[key]); }));
        };
        named.forEach(function (key) { timing.layers[key] = {}; });
        // the clustered layers' patches first, the others once they are drawn: asked together, the
        // server computed them side by side (one interpreter) and the case layer's took twice as long
        return patched(named.filter(clustered)).then(function () {
            return patched(named.filter(function (key) { return !clustered(key); }));
        });
    }

    prefetch();
    window.opsmap = Object.assign({}, window.opsmap, {layers: {show: show, notice: notice}, timings: timings});
    window.dash_clientside = window.dash_clientside || {};
    window.dash_clientside.opsmap = Object.assign({}, window.dash_clientside.opsmap, {
        showLayers: function (sources, bounds, zoom) {
            show(sources);
            moved(bounds, zoom);
            return window.dash_clientside.no_update;
        }
    });
})();
