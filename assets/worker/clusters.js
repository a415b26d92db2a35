/* The cluster worker. A street's case layer can hold 100,000 points: parsing it, merging
   its patches and building its cluster index (supercluster) take the page's main thread
   most of a second each time, so they happen here, and the page asks only for the clusters
   and points of its view (a few hundred features) — assets/layers.js.

   Messages {id, op, ...} are answered {id, result} or {id, error}:
   - load {url, options}: fetch the layer whole (in binary columns: dashboard/answers.columnar)
     and index it → {version} (the page asks as its HTML is read, so this runs while Dash's
     scripts load and boot); its features are made only when a patch or a new index needs them
   - patch {url, from}: fetch the patch at ``from`` (or the whole layer, when the server no
     longer knows the version it is from) and apply it → {version, changed, fetched, merged}
     (epoch ms: when the answer had arrived, and when it was merged). A patch is not indexed
     at once (rebuilding the index of 100,000 points takes ~60 ms, a third of a new case's way
     to the screen): until ``settle``, views show its new features as points of their own and
     leave out the points it removed (a cluster may count one of those meanwhile)
   - settle {url}: index what the patches since the last index changed → whether there was any
     (the page then draws its view again). The index is built by a worker of this one's
     (indexer.js), so patches and views are answered meanwhile; patches that arrive while it
     is built are kept beside the new index as they were beside the old. Where a worker cannot
     start one, or it fails, the index is built here.
   - view {url, bbox: [w, s, e, n], zoom}: the clusters and points in bbox at zoom; a
     cluster carries its count, the kind of its severest case and the zoom that splits it
   - drop {url}: forget a layer the page no longer shows.
   This folder is kept out of the page's own scripts (dashboard/app.py: assets_path_ignore). */
/* global importScripts, Supercluster, opsmapGeo */
importScripts("supercluster.min.js", "../geojson.js");

var layers = {};  // url → {fc, rows, version, options, index, worst, fresh, gone, since}

function adopted(layer, index) {  // ``index`` of the layer's points as they are now
    layer.index = index;
    layer.worst = new Map();  // cluster id → its severest leaf, for this index
    layer.fresh = new Map();  // id → a feature patched in since the index: shown as a point
    layer.gone = new Set();  // ids whose indexed point is no longer (removed, or changed: then fresh)
    layer.since = null;  // an index being built elsewhere is of an older fc: not taken
    return layer;
}

function indexed(layer) {
    return adopted(layer, new Supercluster({radius: layer.options.radius}).load(features(layer)));
}

var indexer = {worker: null, calls: {}, last: 0, failed: typeof Worker === "undefined"};

function built(coords, radius) {  // a promise of indexer.js's trees for these points; null: build here
    if (indexer.failed) {
        return Promise.resolve(null);
    }
    if (!indexer.worker) {
        try {
            indexer.worker = new Worker("indexer.js");
        } catch (err) {  // refused here (a policy, a browser without nested workers that has the name)
            indexer.failed = true;
            return Promise.resolve(null);
        }
        indexer.worker.onmessage = function (e) {
            var resolve = indexer.calls[e.data.id];
            delete indexer.calls[e.data.id];
            resolve(e.data);
        };
        indexer.worker.onerror = function () {  // it failed: what it was asked, and all later, is built here
            indexer.failed = true;
            var waiting = indexer.calls;
            indexer.calls = {};
            Object.keys(waiting).forEach(function (id) { waiting[id](null); });
        };
    }
    return new Promise(function (resolve) {
        indexer.last += 1;
        indexer.calls[indexer.last] = resolve;
        indexer.worker.postMessage({id: indexer.last, coords: coords, radius: radius}, [coords.buffer]);
    });
}

var KDBush = null;  // supercluster's tree class (not exported): taken from an empty index

// A supercluster index of ``features`` made of the trees indexer.js built for their points: its
// points' properties and ids are this worker's own (clusters carry no properties: no map/reduce).
function adopt(trees, features, radius) {
    KDBush = KDBush || new Supercluster().load([]).trees[0].constructor;
    var index = new Supercluster({radius: radius});
    var made = trees.trees.map(function (t) {
        var tree = KDBush.from(t.buffer);
        tree.data = t.data;
        return tree;
    });
    index.trees = trees.zooms.map(function (at) { return made[at]; });
    index.coords = trees.coords;
    index.numPoints = features.length;
    index.props = features.map(function (f) { return f.properties; });
    index.ids = features.map(function (f) { return f.id; });
    return index;
}

function reindexed(layer) {  // a promise: whether the layer now has an index of what it holds
    var all = features(layer);
    var since = layer.since = [];  // the patches after this moment, to keep beside the new index
    var coords = new Float64Array(all.length * 2);
    for (var i = 0; i < all.length; i++) {
        coords[2 * i] = all[i].geometry.coordinates[0];
        coords[2 * i + 1] = all[i].geometry.coordinates[1];
    }
    return built(coords, layer.options.radius).then(function (trees) {
        if (layer.since !== since) {
            return false;  // loaded whole, dropped, or another index begun meanwhile
        }
        if (!trees) {
            indexed(layer);
            return true;
        }
        adopted(layer, adopt(trees, all, layer.options.radius));
        since.forEach(function (patch) { unindexed(layer, patch); });
        return true;
    });
}

function unindexed(layer, patch) {  // a patch's changes, kept beside the index until ``settle``
    if (layer.since) {
        layer.since.push(patch);
    }
    patch.remove.forEach(function (id) {
        layer.gone.add(String(id));
        layer.fresh.delete(String(id));
    });
    patch.upsert.forEach(function (f) {
        layer.gone.add(String(f.id));
        layer.fresh.set(String(f.id), f);
    });
}

var ARRAYS = {f64: Float64Array, i32: Int32Array, u8: Uint8Array, u16: Uint16Array, u32: Uint32Array};
var MAGIC = "OPSCOL01";

// A layer in binary columns (dashboard/answers.columnar describes them) as a table: {count,
// lng, lat (Float64Arrays), id(i), properties(i)}, a row's id and properties made when asked;
// null for bytes that are not. The arrays are read where they lie (little-endian, as every
// machine a browser runs on).
function table(buffer) {
    var bytes = new Uint8Array(buffer);
    if (String.fromCharCode.apply(null, bytes.subarray(0, MAGIC.length)) !== MAGIC) {
        return null;
    }
    var length = new DataView(buffer).getUint32(MAGIC.length, true);
    var header = JSON.parse(new TextDecoder().decode(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + length)));
    var start = Math.ceil((MAGIC.length + 4 + length) / 8) * 8, count = header.count;

    function column(spec) {  // → function (row) → value
        if (spec.list) {
            return function (i) { return spec.list[i]; };
        }
        var array = new ARRAYS[spec.array](buffer, start + spec.at, count);
        if (spec.values) {
            return function (i) { return spec.values[array[i]]; };
        }
        return spec.text ? function (i) { return String(array[i]); } : function (i) { return array[i]; };
    }

    function coordinates(spec) {  // a loop, not Float64Array.from with a function: 2 ms, not 15
        var read = column(spec), values = new Float64Array(count);
        for (var i = 0; i < count; i++) {  // the same double as the decimal text's (division rounds once)
            values[i] = spec.scale ? read(i) / spec.scale : read(i);
        }
        return values;
    }

    var id = column(header.ids), names = Object.keys(header.properties);
    var columns = names.map(function (name) {
        var spec = header.properties[name];
        return spec.same === "ids" ? id : column(spec);
    });
    return {count: count, lng: coordinates(header.lng), lat: coordinates(header.lat), id: id,
            properties: function (i) {
                var properties = {};
                for (var k = 0; k < names.length; k++) {
                    properties[names[k]] = columns[k](i);
                }
                return properties;
            }};
}

// The GeoJSON a table stands for.
function collection(rows) {
    var features = new Array(rows.count);
    for (var i = 0; i < features.length; i++) {
        features[i] = {type: "Feature", id: rows.id(i), properties: rows.properties(i),
                       geometry: {type: "Point", coordinates: [rows.lng[i], rows.lat[i]]}};
    }
    return {type: "FeatureCollection", features: features};
}

function lazily(read) {  // an array whose i-th element is read(i), made when asked
    return new Proxy([], {get: function (target, key) {
        return typeof key === "string" && key !== "" && key >= 0 ? read(Number(key)) : target[key];
    }});
}

// A supercluster index of a table's points, made without a feature per point (making them was
// a third of the worker's ~0.2 s cold load): load() reads each point's coordinates as it
// iterates, so one cursor stands for every row in turn; the index then reads the rows'
// properties and ids from the table (supercluster 9's props and ids, as adopt() sets them).
function tableIndex(rows, radius) {
    var at = [0, 0], cursor = {type: "Feature", geometry: {type: "Point", coordinates: at}, properties: null};
    var points = {length: rows.count};
    points[Symbol.iterator] = function* () {
        for (var i = 0; i < rows.count; i++) {
            at[0] = rows.lng[i];
            at[1] = rows.lat[i];
            yield cursor;
        }
    };
    var index = new Supercluster({radius: radius}).load(points);
    index.props = lazily(rows.properties);
    index.ids = lazily(rows.id);
    return index;
}

function features(layer) {  // the layer's features: a loaded table's made once a patch or an index asks
    if (!layer.fc) {
        layer.fc = collection(layer.rows);
        layer.rows = null;
    }
    return layer.fc.features;
}

function inside(bbox, f) {
    var c = f.geometry.coordinates;
    return c[0] >= bbox[0] && c[0] <= bbox[2] && c[1] >= bbox[1] && c[1] <= bbox[3];
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
        return opsmapGeo.fetchAnswer(msg.url + "&form=columns", {}, "arrayBuffer").then(function (got) {
            var rows = table(got.body), layer = {rows: rows, version: got.version, options: msg.options};
            if (rows) {
                layers[msg.url] = adopted(layer, tableIndex(rows, msg.options.radius));
            } else {  // GeoJSON: a layer the server would not put in columns
                layer.fc = JSON.parse(new TextDecoder().decode(got.body));
                layers[msg.url] = indexed(layer);
            }
            return {version: got.version};
        });
    },
    patch: function (msg) {
        var layer = known(msg.url);
        return opsmapGeo.fetchAnswer(msg.from, {cache: "no-store"}).then(function (got) {
            var fetched = Date.now();
            features(layer);  // a loaded table's made now: the patch is merged into them
            var next = opsmapGeo.applied(layer.fc, layer.version, got);
            layer.version = next.version;
            if (next.changed) {
                layer.fc = next.fc;
                if (got.body.type === "Patch") {
                    unindexed(layer, got.body);
                } else {
                    indexed(layer);  // a whole layer (the server no longer knew the version)
                }
            }
            return {version: next.version, changed: next.changed, fetched: fetched, merged: Date.now()};
        });
    },
    settle: function (msg) {
        var layer = known(msg.url);
        if (!layer.fresh.size && !layer.gone.size) {
            return false;
        }
        return reindexed(layer);
    },
    view: function (msg) {
        var layer = known(msg.url);
        var shown = layer.index.getClusters(msg.bbox, Math.floor(msg.zoom)).filter(function (f) {
            return f.properties.cluster || !layer.gone.has(String(f.id));
        }).map(function (f) {
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
        layer.fresh.forEach(function (f) {
            if (inside(msg.bbox, f)) {
                shown.push(f);
            }
        });
        return shown;
    },
    drop: function (msg) {
        if (layers[msg.url]) {
            layers[msg.url].since = null;  // an index on its way is not wanted
        }
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
