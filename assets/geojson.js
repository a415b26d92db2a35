/* The read API's GeoJSON answers, for the page (assets/layers.js) and for the cluster worker
   (assets/worker/clusters.js), which loads this file too: fetching an answer with its version
   (the X-Opsmap-Version header), and merging a patch ({upsert, remove}) into a collection. */
(function (scope) {
    "use strict";

    function fetchAnswer(url, options, read) {  // read: "json", or "arrayBuffer" for the bytes unparsed
        return fetch(url, options).then(function (response) {
            if (!response.ok) {
                throw new Error(url + ": HTTP " + response.status);
            }
            return response[read || "json"]().then(function (body) {
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

    scope.opsmapGeo = {fetchAnswer: fetchAnswer, merge: merge};
})(self);
