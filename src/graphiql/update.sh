#!/usr/bin/env bash
# Fetches the pinned GraphiQL, React and ReactDOM production builds from npm into this directory, with their
# licences, and writes SHA256SUMS (which a unit test checks the embedded files against). To move to other
# versions, change them here and in src/graphiql.rs (GRAPHIQL_VERSION, REACT_VERSION and the asset paths).
set -euo pipefail
cd "$(dirname "$0")"
GRAPHIQL=3.9.0
REACT=18.3.1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for package in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
    mkdir -p "$work/$package" && tar xzf "$work/$package.tgz" -C "$work/$package"
done
cp "$work/graphiql-$GRAPHIQL/package/graphiql.min.js" "$work/graphiql-$GRAPHIQL/package/graphiql.min.css" .
cp "$work/react-$REACT/package/umd/react.production.min.js" .
cp "$work/react-dom-$REACT/package/umd/react-dom.production.min.js" .
cp "$work/graphiql-$GRAPHIQL/package/LICENSE" LICENSE.graphiql
cp "$work/react-$REACT/package/LICENSE" LICENSE.react
cp "$work/react-dom-$REACT/package/LICENSE" LICENSE.react-dom
sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js > SHA256SUMS
cat SHA256SUMS
