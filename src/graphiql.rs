//! GraphiQL from assets embedded in the binary: the production builds of GraphiQL 3.9.0, React 18.3.1 and
//! ReactDOM 18.3.1 exactly as npm publishes them (`src/graphiql/`, with their licences and checksums), served by
//! Stakegraph itself under versioned paths, so that GraphiQL works with no network at all. The page loads nothing
//! from another origin: its `Content-Security-Policy` forbids it, and each script and style sheet carries its
//! Subresource Integrity hash.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::sync::LazyLock;

/// GraphiQL's version, in its assets' paths.
pub const GRAPHIQL_VERSION: &str = "3.9.0";
/// React's and ReactDOM's version, in their assets' paths.
pub const REACT_VERSION: &str = "18.3.1";

/// Where the assets are served.
pub const PREFIX: &str = "/graphiql";

/// One embedded file.
struct Asset {
    /// Its path below [`PREFIX`].
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every embedded file: the builds, the page's own script, and the licences.
const ASSETS: [Asset; 8] = [
    Asset {
        path: "/graphiql/3.9.0/graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("graphiql/graphiql.min.js"),
    },
    Asset {
        path: "/graphiql/3.9.0/graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("graphiql/graphiql.min.css"),
    },
    Asset {
        path: "/graphiql/18.3.1/react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("graphiql/react.production.min.js"),
    },
    Asset {
        path: "/graphiql/18.3.1/react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("graphiql/react-dom.production.min.js"),
    },
    Asset { path: "/graphiql/start.js", content_type: "text/javascript; charset=utf-8", bytes: START.as_bytes() },
    Asset {
        path: "/graphiql/3.9.0/LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("graphiql/LICENSE.graphiql"),
    },
    Asset {
        path: "/graphiql/18.3.1/LICENSE.react",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("graphiql/LICENSE.react"),
    },
    Asset {
        path: "/graphiql/18.3.1/LICENSE.react-dom",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("graphiql/LICENSE.react-dom"),
    },
];

/// The page's own script: GraphiQL on `/graphql` in the same origin, its headers editor open for the caller's
/// `{"Authorization": "Bearer <key>"}` (a demo on loopback reads without one).
const START: &str = r#"// Stakegraph's GraphiQL: the embedded GraphiQL on this service's /graphql.
"use strict";
const fetcher = GraphiQL.createFetcher({ url: new URL("/graphql", window.location.href).toString() });
const root = ReactDOM.createRoot(document.getElementById("graphiql"));
root.render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: false,
  }),
);
"#;

/// Nothing but this origin, and the inline styles and data-URL fonts and images GraphiQL uses.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The page, with each asset's Subresource Integrity hash.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let tag = |path: &str| {
        let asset = ASSETS.iter().find(|asset| asset.path == path).expect("an embedded asset");
        let digest = ring::digest::digest(&ring::digest::SHA384, asset.bytes);
        let integrity = format!("sha384-{}", STANDARD.encode(digest.as_ref()));
        if path.ends_with(".css") {
            format!(r#"<link rel="stylesheet" href="{path}" integrity="{integrity}">"#)
        } else {
            format!(r#"<script src="{path}" integrity="{integrity}"></script>"#)
        }
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stakegraph</title>
{css}
<style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
{react}
{react_dom}
{graphiql}
{start}
</body>
</html>
"#,
        css = tag("/graphiql/3.9.0/graphiql.min.css"),
        react = tag("/graphiql/18.3.1/react.production.min.js"),
        react_dom = tag("/graphiql/18.3.1/react-dom.production.min.js"),
        graphiql = tag("/graphiql/3.9.0/graphiql.min.js"),
        start = tag("/graphiql/start.js"),
    )
});

/// GraphiQL's page.
pub fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

/// The embedded file at `path` (below [`PREFIX`]), or a 404 naming what is there. The versioned builds are
/// cached for a year; the page's own script is revalidated.
pub fn asset(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        let served: Vec<&str> = ASSETS.iter().map(|asset| asset.path).collect();
        let message = format!("{path} is not one of GraphiQL's files; they are {}", served.join(", "));
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response();
    };
    let cache = if asset.path.contains(GRAPHIQL_VERSION) || asset.path.contains(REACT_VERSION) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded builds are byte for byte those npm publishes (`src/graphiql/SHA256SUMS`).
    #[test]
    fn the_embedded_builds_are_the_published_ones() {
        let sums = include_str!("graphiql/SHA256SUMS");
        let files = [
            ("graphiql.min.js", ASSETS[0].bytes),
            ("graphiql.min.css", ASSETS[1].bytes),
            ("react.production.min.js", ASSETS[2].bytes),
            ("react-dom.production.min.js", ASSETS[3].bytes),
        ];
        for (name, bytes) in files {
            let line = sums.lines().find(|line| line.ends_with(name)).unwrap_or_else(|| panic!("{name} is listed"));
            let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
            let hex: String = digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
            assert!(line.starts_with(&hex), "{name}: {hex} is not {line}");
        }
    }

    #[test]
    fn the_page_names_only_embedded_files_with_their_integrity() {
        let page = PAGE.as_str();
        for asset in ASSETS.iter().filter(|asset| !asset.path.contains("LICENSE")) {
            assert!(page.contains(&format!("\"{}\" integrity=\"sha384-", asset.path)), "{}", asset.path);
        }
        assert!(!page.contains("http"), "no other origin: {page}");
    }
}
