// Client-side map styling for dash-leaflet GeoJSON layers (referenced as window.opsmap.map.*).
// Labels are set with textContent, never as HTML: names come from public data and events.
window.opsmap = Object.assign({}, window.opsmap, {
    map: {
        areaStyle: function (feature) {
            if (feature.properties.kind === "street") {
                return {color: "#e8590c", weight: 3, fill: true, fillColor: "#fff4e6", fillOpacity: 0.35};
            }
            if (feature.properties.kind === "committee") {
                return {color: "#4dabf7", weight: 1.5, dashArray: "6 4", fill: false};
            }
            return {color: "#2f9e44", weight: 1.5, fillColor: "#8ce99a", fillOpacity: 0.5,
                    className: "opsmap-compound"};
        },
        compoundPoint: function (feature, latlng) {
            return L.circleMarker(latlng, {radius: 5, color: "#2b8a3e", weight: 1,
                                           fillColor: "#69db7c", fillOpacity: 0.9,
                                           className: "opsmap-compound"});
        },
        tooltip: function (feature, layer) {
            const label = document.createElement("span");
            label.textContent = feature.properties.name;
            layer.bindTooltip(label, {sticky: true});
        }
    }
});
