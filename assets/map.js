// Client-side styling of the map layers (dash-leaflet GeoJSON; window.opsmap.map.*).
// Each GeoJSON passes hideout = {layer: "<layer id>", colours: {kind: colour}} from its legend,
// so colours are declared once, in Python. Labels are set with textContent, never as HTML:
// names come from public data and from events.
//
// Names on the map (committees, observation days, main roads, compounds) are not tooltips that
// pile up: each feature's layer carries a label candidate (_opsmapLabel), and one label pane per
// map places them after every move and data change, most important first, skipping any that
// would overlap one already placed — so the map declutters itself at every zoom.
(function () {
    const grey = "#868e96";
    // markers grow with the screen: a 3840×2160 wall shows them at twice the size of 1080p
    const SCALE = Math.max(1, window.innerHeight / 1080);
    // label kinds: rank (placed first when lower), font size (px, before SCALE), least zoom shown
    const LABELS = {committee: [0, 14, 0], day: [1, 11, 15], road: [2, 12, 15], compound: [3, 11, 17]};
    const MAX_LABELS = 250;

    function textWidth(text, size) {  // estimated: CJK glyphs are about 1 em wide, the rest about 0.6 em
        let em = 0;
        for (const ch of text) { em += /[\u2e80-\uffff]/.test(ch) ? 1 : 0.6; }
        return em * size + 6;
    }

    function anchors(layer) {  // where a feature's label may go: its point, the middle of its shape,
        // or — a road of many pieces (layers/basemap.py joins them) — the middle of each piece in turn
        if (layer.getLatLng) { return [layer.getLatLng()]; }
        try {
            const rings = layer.getLatLngs();
            if (!(layer instanceof L.Polygon) && rings.length && Array.isArray(rings[0])) {
                const crs = layer._map.options.crs;
                return rings.filter(function (r) { return r.length > 1; })
                    .map(function (r) { return L.LineUtil.polylineCenter(r, crs); });
            }
            return [layer.getCenter()];
        } catch (e) { return []; }  // an empty or not yet drawn shape
    }

    function layout(map) {
        const pane = map.getPane("opsmap-labels");
        const zoom = map.getZoom();
        const size = map.getSize();
        const candidates = [];
        map.eachLayer(function (layer) {
            const c = layer._opsmapLabel;
            if (c && c.text && zoom >= LABELS[c.kind][2]) {
                candidates.push({c: c, layer: layer});
            }
        });
        candidates.sort(function (a, b) { return LABELS[a.c.kind][0] - LABELS[b.c.kind][0]; });
        const placed = [], seen = {};
        const frag = document.createDocumentFragment();
        function fits(at, c, w, h) {  // the label's box at ``at``, or null where it would not fit
            const p = map.latLngToContainerPoint(at);
            const point = c.kind === "day" || c.kind === "compound";  // beside the marker, not on it
            const box = {x: point ? p.x + 7 * SCALE : p.x - w / 2, y: p.y - h / 2, w: w, h: h};
            if (box.x < 0 || box.y < 0 || box.x + w > size.x || box.y + h > size.y) { return null; }
            return placed.some(function (o) {
                return box.x < o.x + o.w && o.x < box.x + w && box.y < o.y + o.h && o.y < box.y + h;
            }) ? null : box;
        }
        for (const {c, layer} of candidates) {
            if (placed.length >= MAX_LABELS) { break; }
            if (c.kind !== "day" && seen[c.kind + c.text]) { continue; }  // a road's many features: one name
            const fs = LABELS[c.kind][1] * SCALE, w = textWidth(c.text, fs), h = fs + 4;
            let box = null;
            for (const at of anchors(layer)) {
                if ((box = fits(at, c, w, h))) { break; }
            }
            if (!box) { continue; }
            placed.push(box);
            seen[c.kind + c.text] = true;
            const el = document.createElement("div");
            el.className = "opsmap-label opsmap-label-" + c.kind;
            el.textContent = c.text;  // text, never HTML: names come from data and events
            el.style.fontSize = fs + "px";
            const lp = map.containerPointToLayerPoint([box.x, box.y]);
            L.DomUtil.setPosition(el, lp);
            frag.appendChild(el);
        }
        pane.replaceChildren(frag);
    }

    function legend() {  // the legend the page names (data-legend), drawn once as text
        const box = document.querySelector(".opsmap-legend[data-legend]:not(.drawn)");
        if (!box) { return; }
        box.classList.add("drawn");
        const details = document.createElement("details");
        // folded on a phone (the width of the phone layout in opsmap.css): open, it would cover the map
        details.open = !window.matchMedia("(max-width: 720px)").matches;
        const summary = document.createElement("summary");
        summary.textContent = box.dataset.title;
        details.appendChild(summary);
        JSON.parse(box.dataset.legend).forEach(function (layer) {
            const h = document.createElement("h3");
            h.textContent = layer.title;
            const ul = document.createElement("ul");
            layer.entries.forEach(function ([shape, colour, text]) {
                const li = document.createElement("li"), swatch = document.createElement("span");
                swatch.className = "mark " + shape;
                swatch.style[shape === "ring" ? "borderColor" : "background"] = colour;
                li.append(swatch, label(text));
                ul.appendChild(li);
            });
            details.append(h, ul);
        });
        box.appendChild(details);
    }

    // Leaflet measures its container once: a headline or panel drawn beside the map later
    // (the big screen's headline row takes 80-160 px of its height) would leave every fit of
    // the camera cut off by that much. A container of another size is measured again, and
    // "opsmap:resized" tells the page (assets/screen.js aims its camera again).
    function sized(map) {
        if (!window.ResizeObserver) { return; }
        const box = map.getContainer();
        new ResizeObserver(function () {
            const known = map.getSize();
            if (known.x !== box.clientWidth || known.y !== box.clientHeight) {
                map.invalidateSize();
                box.dispatchEvent(new CustomEvent("opsmap:resized", {bubbles: true}));
            }
        }).observe(box);
    }

    // once per map, at its first labelled feature: its label pane, laid out again (once per frame)
    // after changes, and its container watched for another size (sized)
    function labelled(map) {
        if (!map || map._opsmapLabels) { return; }
        sized(map);
        legend();
        map.createPane("opsmap-labels");
        let queued = false;
        const again = function () {
            if (queued) { return; }
            queued = true;
            requestAnimationFrame(function () { queued = false; layout(map); });
        };
        map._opsmapLabels = again;
        map.on("zoomend moveend resize", again);
        // only a labelled feature coming or going moves the labels: the cases' clusters, drawn
        // again for every new case and every pan, would otherwise lay them all out each time
        map.on("layeradd layerremove", function (e) { if (e.layer._opsmapLabel) { again(); } });
        again();
    }

    function candidate(layer, kind, text) {
        layer._opsmapLabel = {kind: kind, text: text == null ? "" : String(text)};
    }

    function colour(feature, context) {
        const colours = (context && context.hideout && context.hideout.colours) || {};
        return colours[feature.properties.tier] || colours[feature.properties.kind] || grey;
    }

    function layerOf(context) {
        return (context && context.hideout && context.hideout.layer) || "";
    }

    function label(text) {
        const el = document.createElement("span");
        el.textContent = text == null ? "" : String(text);
        return el;
    }

    // A cluster from the cluster worker (assets/worker/clusters.js): its count, in the colour
    // of the severest case inside it; a click zooms to where it splits.
    function cluster(p, latlng, c) {
        const side = Math.round(30 * SCALE);
        const marker = L.marker(latlng, {icon: L.divIcon({className: "opsmap-cluster", iconSize: [side, side], html: ""})});
        marker.on("add", function () {
            const el = marker.getElement();
            el.style.background = c;
            el.dataset.kind = p.kind;
            el.appendChild(label(p.point_count));
        });
        marker.on("click", function () {
            marker._map.setView(latlng, p.expansion_zoom);
        });
        return marker;
    }

    // A layer of points (assets/layers.js) is drawn again for every change, a clustered one for
    // every move too. Through Dash, dash-leaflet clears every marker and makes them all again;
    // ``redraw`` instead replaces, in the same Leaflet layer, only the markers whose feature
    // changed. layers.js claims the layer as it hands it to Dash (``claim``); the claim learns the
    // Leaflet layer when that draw adds one of its markers, and until then layers.js goes through Dash.
    const claims = {};

    function idKey(id) {  // a Dash id as a key: a component is handed its id as JSON with the keys sorted
        const parsed = typeof id === "string" && id.charAt(0) === "{" ? JSON.parse(id) : id;
        return JSON.stringify(Object.keys(parsed).sort().map(function (k) { return [k, parsed[k]]; }));
    }

    function signature(f) {  // what a marker shows: the same signature, the same marker. Not a
        // cluster's id: it changes with every re-index (supercluster counts the points into it)
        const p = Object.assign({}, f.properties);
        if (p.cluster) { delete p.id; delete p.cluster_id; } else { p.cluster = false; }  // as dash-leaflet has them
        return JSON.stringify([f.geometry.coordinates, p]);
    }

    const contextKeys = new WeakMap();  // dash-leaflet hands every feature of a draw the same context

    function claimed(feature, layer, context) {  // a marker of a claimed layer: learn the layer it is added to
        if (!context || !context.id) { return; }
        if (!contextKeys.has(context)) { contextKeys.set(context, idKey(context.id)); }
        const claim = claims[contextKeys.get(context)];
        if (!claim || claim.group || claim.waiting) { return; }
        claim.waiting = true;
        layer.once("add", function () {
            claim.waiting = false;
            context.map.eachLayer(function (l) {
                if (!claim.group && l instanceof L.GeoJSON && l.hasLayer(layer)) { claim.group = l; }
            });
            claim.map = context.map;
        });
    }

    // A marker's feature is kept when it is the very object of the new collection (a merged
    // patch keeps those of the features it did not change: most of a layer, compared by
    // reference), or has the same signature (the cluster worker's answers are new objects);
    // signatures are worked out only for the rest, once per marker.
    function redraw(claim, fc) {  // true when drawn here; false: draw it through Dash
        const group = claim && claim.group;
        if (!group || !claim.map.hasLayer(group)) { return false; }  // not known yet, or switched off
        const incoming = new Set(fc.features);
        const rest = [];
        group.eachLayer(function (l) {
            if (incoming.has(l.feature)) {
                incoming.delete(l.feature);
            } else {
                rest.push(l);
            }
        });
        const wanted = new Map();
        incoming.forEach(function (f) { wanted.set(signature(f), f); });
        const gone = [];
        rest.forEach(function (l) {
            const signed = l._opsmapSignature || (l._opsmapSignature = signature(l.feature));
            const want = wanted.get(signed);
            if (want) {
                wanted.delete(signed);
                l.feature = want;  // a kept cluster takes its id in the new index
            } else {
                gone.push(l);
            }
        });
        gone.forEach(function (l) { group.removeLayer(l); });
        if (wanted.size) { group.addData({type: "FeatureCollection", features: Array.from(wanted.values())}); }
        return true;
    }

    window.dash_clientside = window.dash_clientside || {};
    window.dash_clientside.opsmap = Object.assign({}, window.dash_clientside.opsmap, {
        offered: function (options, value) {  // a choice the new list of options still has is kept
            const kept = (options || []).some(function (o) { return o.value === value; });
            return value === null || value === undefined || kept ? window.dash_clientside.no_update : null;
        }
    });

    window.opsmap = Object.assign({}, window.opsmap, {
        map: {
            claim: function (id) {
                const claim = {group: null, map: null, waiting: false};
                claims[idKey(id)] = claim;
                return claim;
            },
            redraw: redraw,
            style: function (feature, context) {
                if (feature.geometry.type === "Point") {
                    return {};  // points are styled once, in point(); do not overwrite their marks
                }
                const layer = layerOf(context);
                const p = feature.properties;
                if (layer === "basemap") {
                    if (p.kind === "water") {
                        return {stroke: false, fill: true, fillColor: "#a5d8ff", fillOpacity: 0.7, interactive: false};
                    }
                    const major = ["primary", "secondary", "trunk"].indexOf(p.highway) >= 0;
                    return {color: "#ced4da", weight: major ? 4 : 2, interactive: false};
                }
                if (layer === "boundaries") {  // named by class: fever alerts share the street's colour
                    return Object.assign(p.kind === "street"
                        ? {color: "#e8590c", weight: 3, fill: true, fillColor: "#fff4e6", fillOpacity: 0.25}
                        : {color: "#4dabf7", weight: 1.5, dashArray: "6 4", fill: false},
                        {className: "opsmap-boundaries opsmap-kind-" + p.kind});
                }
                return {color: colour(feature, context), weight: 1.5, fillOpacity: 0.45,
                        className: "opsmap-" + layer};
            },
            point: function (feature, latlng, context) {
                const layer = layerOf(context);
                const p = feature.properties;
                const c = colour(feature, context);
                if (p.cluster) {
                    const marker = cluster(p, latlng, c);
                    claimed(feature, marker, context);
                    return marker;
                }
                const base = {radius: 6, color: c, weight: 1.5 * SCALE, fillColor: c, fillOpacity: 0.85,
                              className: "opsmap-" + layer + " opsmap-kind-" + p.kind +
                                         (p.id ? " opsmap-id-" + String(p.id).replace(/[^A-Za-z0-9_-]/g, "_") : "")};
                if (layer === "compounds") {
                    base.radius = 5;
                    base.fillOpacity = 0.6;
                    base.className = "opsmap-compound opsmap-tier-" + p.tier + " opsmap-id-" + p.id;
                } else if (layer === "gates") {
                    base.radius = 4;
                    if (p.understaffed) { base.color = "#c92a2a"; base.weight = 3 * SCALE; }
                    if (p.stale) { base.dashArray = "2 2"; }
                    if (p.silent) { base.fillColor = "#adb5bd"; base.className += " opsmap-silent"; }
                } else if (layer === "observations") {
                    if (p.kind === "released") { base.fillOpacity = 0.2; base.opacity = 0.3; }
                    if (p.missing) { base.color = "#e03131"; base.weight = 3 * SCALE; }
                } else if (layer === "workorders") {
                    base.radius = 7;
                    if (p.overdue) { base.className += " opsmap-overdue"; base.color = "#e03131"; base.weight = 3 * SCALE; }
                    // 催办 / 督办: a ring of the level's colour (legend: layers/workorders.py LEVELS)
                    if (p.level === "reminded") { base.color = "#f76707"; base.weight = 4 * SCALE; }
                    if (p.level === "supervised") {
                        base.color = "#862e9c"; base.weight = 5 * SCALE; base.className += " opsmap-supervised";
                    }
                } else if (layer === "alerts") {
                    base.radius = 9;
                    base.className += " opsmap-alert";
                } else if (layer === "shops" || layer === "sites") {
                    base.radius = 4;
                }
                base.radius *= SCALE;
                const marker = L.circleMarker(latlng, base);
                claimed(feature, marker, context);
                return marker;
            },
            // the compound chosen in the header: a blue ring of its own layer, over everything
            // (restyling the compounds for it would redraw them while their data may be loading)
            chosen: function (feature, latlng) {
                return L.circleMarker(latlng, {radius: 13 * SCALE, color: "#1c7ed6", weight: 4 * SCALE, fill: false,
                                               interactive: false, className: "opsmap-chosen"});
            },
            tooltip: function (feature, layer, context) {
                const p = feature.properties;
                const kind = layerOf(context);
                if (kind === "boundaries" && p.kind === "committee") {
                    candidate(layer, "committee", p.name);
                } else if (kind === "observations" && p.kind === "active") {
                    candidate(layer, "day", p.label);  // 第N/M天, or N人 at a compound
                } else if (kind === "basemap" && p.name && ["primary", "secondary", "trunk", "tertiary"]
                        .indexOf(p.highway) >= 0) {
                    candidate(layer, "road", p.name);
                } else if (kind === "compounds") {
                    candidate(layer, "compound", p.name);
                }
                labelled(context && context.map);
                if (p.name && kind !== "basemap") {  // bound when first pointed at: hundreds of features redraw at once
                    layer.once("mouseover", function (e) {
                        layer.bindTooltip(label(p.name), {sticky: true}).openTooltip(e.latlng);
                    });
                }
            }
        }
    });
})();
