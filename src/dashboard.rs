//! The live dashboard of a running topology, served at `/` by `topo run --http ADDR`: a page
//! that draws the topology and polls the figures of [`crate::http`] every second.
//!
//! ```text
//!  browser ── GET /  /dashboard.js  /dashboard.css ──► these files (bundled in the binary)
//!     │
//!     ├── GET /api/topology  once ──► graph: spouts and bolts in layers, left to right
//!     └── GET /api/metrics?window=5s every second ──► its `figures` (crate::figures): rates,
//!                                             capacity colours, the bottleneck, table,
//!                                             sparklines of the last 5 minutes, errors
//! ```
//!
//! The page is plain HTML, CSS and one JavaScript module (no framework, no build step, nothing
//! fetched from elsewhere: it works offline). It computes no figure: rates, capacities, latency
//! quantiles and the bottleneck come from the endpoint (computed once, in [`crate::figures`], as
//! for `topo top`); the page keeps only the recent points of its charts.
//!
//! The files are served with `Cache-Control: no-cache`, so a browser revalidates them on each
//! load and a new `topo` binary's page is never mixed with an old one's script.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;

/// The page.
const INDEX_HTML: &str = include_str!("dashboard/index.html");
/// Its script: fetching, layout and drawing.
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
/// Its style sheet.
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");

/// The dashboard's routes: `/` (the page), `/dashboard.js` and `/dashboard.css`. They need no
/// state, so they merge into any router: `router.merge(dashboard::routes())`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|| file("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/dashboard.js",
            get(|| file("text/javascript; charset=utf-8", DASHBOARD_JS)),
        )
        .route(
            "/dashboard.css",
            get(|| file("text/css; charset=utf-8", DASHBOARD_CSS)),
        )
}

/// One bundled file with its type; revalidated on every load (a live page, small files).
async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves the routes on a free loopback port; the runtime and the address.
    fn serve() -> (tokio::runtime::Runtime, String) {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free port");
        let addr = listener.local_addr().expect("its address").to_string();
        rt.spawn(async move { axum::serve(listener, routes::<()>()).await });
        (rt, addr)
    }

    #[test]
    fn each_file_is_served_with_its_type_and_no_cache() {
        let (rt, addr) = serve();
        let http = reqwest::Client::new();
        for (path, content_type, body) in [
            ("/", "text/html; charset=utf-8", INDEX_HTML),
            (
                "/dashboard.js",
                "text/javascript; charset=utf-8",
                DASHBOARD_JS,
            ),
            ("/dashboard.css", "text/css; charset=utf-8", DASHBOARD_CSS),
        ] {
            let (status, headers, text) = rt.block_on(async {
                let r = http
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .expect("GET");
                let status = r.status();
                let headers = r.headers().clone();
                (status, headers, r.text().await.expect("a body"))
            });
            assert_eq!(status, 200, "{path}");
            assert_eq!(headers[CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(text, body, "{path}");
        }
        let missing = rt.block_on(async {
            http.get(format!("http://{addr}/nothing.js"))
                .send()
                .await
                .expect("GET")
                .status()
        });
        assert_eq!(missing, 404);
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        // Offline: no script, style or font from another host (the SVG namespace is a name,
        // never fetched).
        for text in [INDEX_HTML, DASHBOARD_JS, DASHBOARD_CSS] {
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://"), "an absolute http URL");
            assert!(!text.contains("https://"), "an absolute https URL");
        }
        assert!(INDEX_HTML.contains(r#"<script type="module" src="dashboard.js">"#));
        assert!(INDEX_HTML.contains(r#"href="dashboard.css""#));
    }
}
