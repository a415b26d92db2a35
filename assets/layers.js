/* Map layers, loaded and kept current in the browser (window.opsmap.layers).

   A page's callback puts its layers' URLs in the store "<page>-sources"; show() loads each
   layer whole into its GeoJSON component and remembers the version it got (the
   X-Opsmap-Version header). On a live page a change notice naming a layer (notice(), from
   assets/live.js) — and, for layers that change with time alone, a timer (twice per
   OPSMAP_MAP_REFRESH_S) — then asks for a patch from that version (base=…): the server
   sends only the features that changed or went away, which are merged here. Steps run one
   at a time per layer, in order; a step begun for an earlier street, filter or moment is
   dropped. A patch the server cannot make (it no longer knows the version) comes back whole.

   First paint: the page's HTML names the layers it opens on (<script id="opsmap-prefetch">,
   dashboard/app.py), and they are fetched and parsed as soon as this file runs, while Dash
   is still booting; show() then takes them instead of asking again. Such an answer may be
   older than the notice the page's live stream starts from, so on a live page it is
   followed at once by a patch step. */
(function () {
    "use strict";
    var generation = 0;
    var current = null;  // {live: bool, layers: {key: entry}}
    var timer = null;
    var early = {};  // url → promise of {body, version}, started from the page's HTML

    function render(entry) {
        window.dash_clientside.set_props({type: entry.page + "-layer", id: entry.key}, {data: entry.fc});
    }

    function fetchJson(url, options) {
        return fetch(url, options).then(function (response) {
            if (!response.ok) {
                throw new Error(url + ": HTTP " + response.status);
            }
            return response.json().then(function (body) {
                return {body: body, version: response.headers.get("X-Opsmap-Version")};
            });
        });
    }

    function merge(fc, patch) {
        var gone = new Set(patch.remove.map(String));
        var fresh = new Map(patch.upsert.map(function (f) { return [String(f.id), f]; }));
        var features = [];
        fc.features.forEach(function (f) {
            var id = String(f.id);
            if (gone.has(id)) {
                return;
            }
            features.push(fresh.has(id) ? fresh.get(id) : f);
            fresh.delete(id);
        });
        fresh.forEach(function (f) { features.push(f); });
        return {type: "FeatureCollection", features: features};
    }

    function enqueue(entry, step) {
        entry.queue = entry.queue.then(function () {
            return entry.generation === generation ? step() : null;
        }).catch(function (err) {
            entry.version = null;  // the next step loads the layer whole
            console.warn("opsmap layer " + entry.key + ": " + err.message);
        });
    }

    function accept(entry, fc, version) {
        entry.fc = fc;
        entry.version = version;
        render(entry);
    }

    function prefetch() {
        var named = document.getElementById("opsmap-prefetch");
        JSON.parse(named ? named.textContent : "[]").forEach(function (url) {
            early[url] = fetchJson(url);
            early[url].catch(function () {});  // whole() asks again; not an unhandled rejection
        });
    }

    function whole(entry, started) {  // started: the answer the page's HTML asked for, if any
        var answer = started ? started.catch(function () { return fetchJson(entry.url); }) : fetchJson(entry.url);
        return answer.then(function (got) {
            if (entry.generation === generation) {
                accept(entry, got.body, got.version);
            }
        });
    }

    function patch(entry, version) {
        if (!entry.version) {
            return whole(entry);
        }
        var url = entry.url + "&base=" + encodeURIComponent(entry.version) + (version ? "&v=" + version : "");
        return fetchJson(url, {cache: "no-store"}).then(function (got) {
            var body = got.body;
            if (entry.generation !== generation) {
                return;
            }
            if (body.type !== "Patch") {  // the server no longer knew our version
                accept(entry, body, got.version);
                return;
            }
            if (body.base !== entry.version) {
                throw new Error("patch from " + body.base + ", not " + entry.version);
            }
            if (body.upsert.length || body.remove.length) {
                accept(entry, merge(entry.fc, body), body.version);
            } else {
                entry.version = body.version;
            }
        });
    }

    function show(sources) {
        var key = JSON.stringify(sources || null);
        if (current && current.key === key) {
            return;  // the same layers again (a callback re-run with the same inputs): keep them
        }
        generation += 1;
        clearInterval(timer);
        current = null;
        if (!sources) {
            return;
        }
        var entries = {};
        Object.keys(sources.layers).forEach(function (key) {
            var entry = {key: key, page: sources.page, url: sources.layers[key], generation: generation,
                         version: null, fc: null, queue: Promise.resolve()};
            entries[key] = entry;
            if (entry.url) {
                var started = early[entry.url];
                enqueue(entry, function () { return whole(entry, started); });
                if (started && sources.live) {
                    enqueue(entry, function () { return patch(entry, null); });
                }
            } else {
                render(entry);
            }
        });
        current = {key: key, live: sources.live, layers: entries};
        early = {};  // what the page's first layers did not take would only grow stale
        if (sources.live && sources.refresh_s > 0) {
            timer = setInterval(function () {
                sources.timely.forEach(function (key) { update(key, null); });
            }, sources.refresh_s * 500);  // twice per period: the server's answers may be half a period old
        }
    }

    function update(key, version) {
        var entry = current && current.live && current.layers[key];
        if (entry && entry.url) {
            enqueue(entry, function () { return patch(entry, version); });
        }
    }

    function notice(message) {
        (message.layers || []).forEach(function (key) { update(key, message.version); });
    }

    prefetch();
    window.opsmap = Object.assign({}, window.opsmap, {layers: {show: show, notice: notice}});
    window.dash_clientside = window.dash_clientside || {};
    window.dash_clientside.opsmap = Object.assign({}, window.dash_clientside.opsmap, {
        showLayers: function (sources) {
            show(sources);
            return window.dash_clientside.no_update;
        }
    });
})();
