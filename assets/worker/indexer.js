/* The cluster worker's indexer (assets/worker/clusters.js starts it as a worker of its own).
   Why: indexing 100,000 points takes the cluster worker 60-150 ms, and a new case that arrived
   meanwhile waited that long for its patch to be fetched and drawn. Here the index is built
   off that worker, which goes on answering patches and views with the index it has.

   A message {id, coords: Float64Array [lng, lat, lng, lat, ...], radius} (its buffer
   transferred) is answered {id, zooms, trees, coords}: supercluster's cluster trees as their
   buffers (each kdbush tree's ArrayBuffer and its cluster data), transferred, for
   clusters.js to take in (adopt); zooms names the tree of each zoom (zooms may share one). */
/* global importScripts, Supercluster */
importScripts("supercluster.min.js");

self.onmessage = function (e) {
    var coords = e.data.coords;
    var points = new Array(coords.length / 2);
    for (var i = 0; i < points.length; i++) {
        points[i] = {type: "Feature", properties: null,
                     geometry: {type: "Point", coordinates: [coords[2 * i], coords[2 * i + 1]]}};
    }
    var index = new Supercluster({radius: e.data.radius}).load(points);
    var unique = [];
    var zooms = index.trees.map(function (tree) {
        var at = unique.indexOf(tree);
        return at >= 0 ? at : unique.push(tree) - 1;
    });
    var buffers = new Set([index.coords.buffer]);
    var trees = unique.map(function (tree) {
        buffers.add(tree.ids.buffer);  // the kdbush tree's own buffer (its ids and coordinates)
        buffers.add(tree.data.buffer);  // what supercluster keeps per point or cluster
        return {buffer: tree.ids.buffer, data: tree.data};
    });
    self.postMessage({id: e.data.id, zooms: zooms, trees: trees, coords: index.coords}, Array.from(buffers));
};
