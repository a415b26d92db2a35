/* The cluster worker. A street's case layer can hold 100,000 points: parsing it, merging
   its patches and building its cluster index (supercluster) take the page's main thread
   most of a second each time, so they happen here, and the page asks only for the clusters
   and points of its view (a few hundred features) — assets/layers.js.

   Messages {id, op, ...} are answered {id, result} or {id, error}:
   - load {url, version, bytes, options}: the layer whole, as the page fetched it (the body's
     bytes, transferred: the page's fetch can use the preload its HTML started), parsed and
     indexed → {version}
   - patch {url, from}: fetch the patch at ``from`` (or the whole layer, when the server no
     longer knows the version it is from) and apply it → {version, changed}
   - view {url, bbox: [w, s, e, n], zoom}: the clusters and points in bbox at zoom; a
     cluster carries its count, the kind of its severest case and the zoom that splits it
   - drop {url}: forget a layer the page no longer shows.
   This folder is kept out of the page's own scripts (dashboard/app.py: assets_path_ignore). */
/* global importScripts, Supercluster, opsmapGeo */
importScripts("supercluster.min.js", "../geojson.js");

var layers = {};  // url → {fc, version, options, index, worst}

function indexed(layer) {
    layer.index = new Supercluster({radius: layer.options.radius}).load(layer.fc.features);
    layer.worst = new Map();  // cluster id → its severest leaf, for this index
    return layer;
}

function known(url) {
    var layer = layers[url];
    if (!layer) {
        throw new Error(url + ": not loaded here");
    }
    return layer;
}

// The severest leaf of a cluster: children depth first, stopping at the first of the
// severest category; each cluster's answer is kept for the index (pans and zooms reuse it).
function worstLeaf(layer, clusterId) {
    if (layer.worst.has(clusterId)) {
        return layer.worst.get(clusterId);
    }
    var worst = null;
    var children = layer.index.getChildren(clusterId);
    for (var i = 0; i < children.length; i++) {
        var child = children[i];
        var leaf = child.properties.cluster ? worstLeaf(layer, child.properties.cluster_id) : child;
        if (!worst || leaf.properties.severity > worst.properties.severity) {
            worst = leaf;
        }
        if (worst.properties.severity >= layer.options.severest) {
            break;
        }
    }
    layer.worst.set(clusterId, worst);
    return worst;
}

var ops = {
    load: function (msg) {
        var fc = JSON.parse(new TextDecoder().decode(msg.bytes));
        layers[msg.url] = indexed({fc: fc, version: msg.version, options: msg.options});
        return {version: msg.version};
    },
    patch: function (msg) {
        var layer = known(msg.url);
        return opsmapGeo.fetchAnswer(msg.from, {cache: "no-store"}).then(function (got) {
            var next = opsmapGeo.applied(layer.fc, layer.version, got);
            layer.version = next.version;
            if (next.changed) {
                layer.fc = next.fc;
                indexed(layer);
            }
            return {version: next.version, changed: next.changed};
        });
    },
    view: function (msg) {
        var layer = known(msg.url);
        return layer.index.getClusters(msg.bbox, Math.floor(msg.zoom)).map(function (f) {
            var p = f.properties;
            if (!p.cluster) {
                return f;
            }
            var worst = worstLeaf(layer, p.cluster_id);
            return {type: "Feature", id: "cluster-" + p.cluster_id, geometry: f.geometry,
                    properties: {cluster: true, cluster_id: p.cluster_id, point_count: p.point_count,
                                 kind: worst.properties.kind, severity: worst.properties.severity,
                                 expansion_zoom: layer.index.getClusterExpansionZoom(p.cluster_id)}};
        });
    },
    drop: function (msg) {
        delete layers[msg.url];
        return null;
    }
};

self.onmessage = function (e) {
    var msg = e.data;
    Promise.resolve().then(function () { return ops[msg.op](msg); }).then(function (result) {
        self.postMessage({id: msg.id, result: result});
    }, function (err) {
        self.postMessage({id: msg.id, error: String(err && err.message || err)});
    });
};
