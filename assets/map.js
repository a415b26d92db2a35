// Client-side styling of the map layers (dash-leaflet GeoJSON; window.opsmap.map.*).
// Each GeoJSON passes hideout = {layer: "<layer id>", colours: {kind: colour}} from its legend,
// so colours are declared once, in Python. Labels are set with textContent, never as HTML:
// names come from public data and from events.
(function () {
    const grey = "#868e96";

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
        const marker = L.marker(latlng, {icon: L.divIcon({className: "opsmap-cluster", iconSize: [30, 30], html: ""})});
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

    window.opsmap = Object.assign({}, window.opsmap, {
        map: {
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
                if (layer === "boundaries") {
                    return p.kind === "street"
                        ? {color: "#e8590c", weight: 3, fill: true, fillColor: "#fff4e6", fillOpacity: 0.25}
                        : {color: "#4dabf7", weight: 1.5, dashArray: "6 4", fill: false};
                }
                return {color: colour(feature, context), weight: 1.5, fillOpacity: 0.45,
                        className: "opsmap-" + layer};
            },
            point: function (feature, latlng, context) {
                const layer = layerOf(context);
                const p = feature.properties;
                const c = colour(feature, context);
                if (p.cluster) {
                    return cluster(p, latlng, c);
                }
                const base = {radius: 6, color: c, weight: 1.5, fillColor: c, fillOpacity: 0.85,
                              className: "opsmap-" + layer + " opsmap-kind-" + p.kind +
                                         (p.id ? " opsmap-id-" + String(p.id).replace(/[^A-Za-z0-9_-]/g, "_") : "")};
                if (layer === "compounds") {
                    base.radius = 5;
                    base.fillOpacity = 0.6;
                    base.className = "opsmap-compound opsmap-tier-" + p.tier + " opsmap-id-" + p.id;
                } else if (layer === "gates") {
                    base.radius = 4;
                    if (p.understaffed) { base.color = "#c92a2a"; base.weight = 3; }
                    if (p.stale) { base.dashArray = "2 2"; }
                } else if (layer === "observations") {
                    if (p.kind === "released") { base.fillOpacity = 0.2; base.opacity = 0.3; }
                    if (p.missing) { base.color = "#e03131"; base.weight = 3; }
                    const marker = L.circleMarker(latlng, base);
                    marker.bindTooltip(label(p.label), {permanent: true, direction: "right",
                                                        className: "opsmap-day-label"});
                    return marker;
                } else if (layer === "workorders") {
                    base.radius = 7;
                    if (p.overdue) { base.className += " opsmap-overdue"; base.color = "#e03131"; base.weight = 3; }
                } else if (layer === "alerts") {
                    base.radius = 9;
                    base.className += " opsmap-alert";
                } else if (layer === "shops" || layer === "sites") {
                    base.radius = 4;
                }
                return L.circleMarker(latlng, base);
            },
            tooltip: function (feature, layer) {
                if (layer.getTooltip && layer.getTooltip()) {
                    return;  // keeps a permanent label (observation day N/14)
                }
                if (feature.properties.name) {
                    layer.bindTooltip(label(feature.properties.name), {sticky: true});
                }
            }
        }
    });
})();
