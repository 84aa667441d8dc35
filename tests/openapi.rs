//! `GET /v1/openapi.json`: an OpenAPI 3 document that describes every route the API serves.
//!
//! Where the route list comes from: the router is built in `jitgate::api::routes()` only
//! through `utoipa_axum::routes!`, which registers each handler and its `#[utoipa::path]`
//! operation together, so the served document *is* the router's route list (and `clippy.toml`
//! forbids the `route`/`nest` methods that would add a route behind its back). This test checks
//! the other direction against the running binary: every documented operation is answered by a
//! handler (never the router's `no such endpoint` fallback nor a 405), and what the document says
//! about tokens and errors holds.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use api::{BOB_TOKEN, Fixture, assert_error};
use serde_json::Value;

/// The router's answer to a path it does not serve.
const FALLBACK: &str = "no such endpoint";

/// One request; returns the status and the response head only (the SSE stream never ends).
fn status_of(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP status in {head:?}"));
    (status, head)
}

/// `/v1/requests/{id}` → `/v1/requests/doesnotexist0`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "doesnotexist0"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

#[test]
fn openapi_document_describes_every_route_and_each_answers() {
    let fx = Fixture::new("20s", 3);
    let addr = fx.env.jg.api_addr();
    let anon = fx.bob.with_token(None);

    // Served without a token, as JSON, OpenAPI 3.x.
    let r = support::http::request(addr, "http", "GET", "/v1/openapi.json", &[], None)
        .expect("GET /v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json")),
        "content type: {:?}",
        r.headers
    );
    let doc: Value = serde_json::from_str(&r.body).expect("the document is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi version {version:?}");
    assert!(doc["info"]["title"].is_string(), "{}", doc["info"]);
    assert_eq!(
        anon.get_ok("/v1/openapi.json"),
        doc,
        "the document is stable"
    );

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let bearer = schemes
        .iter()
        .find(|(_, s)| s["type"] == "http" && s["scheme"] == "bearer")
        .map(|(name, _)| name.clone())
        .expect("an HTTP bearer security scheme");
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    for name in [
        "RequestView",
        "ApprovalRecord",
        "Impact",
        "State",
        "Class",
        "Grant",
        "GrantScope",
        "SessionRecord",
        "Event",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // The error schema is the contract's `{"error":"…"}`.
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["type"], "string",
        "{}",
        schemas["ErrorBody"]
    );
    // Events are free-form objects with the common fields.
    let event = &schemas["Event"];
    for f in ["seq", "at", "session", "kind", "hash"] {
        assert!(event["properties"][f].is_object(), "Event.{f}: {event}");
    }
    assert_eq!(event["additionalProperties"], true, "{event}");
    // The states and classes are the contract's.
    let enum_of = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum: {}", schemas[name]))
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        enum_of("State"),
        ["approved", "cancelled", "denied", "expired", "pending"]
    );
    for c in [
        "read",
        "write",
        "ddl",
        "privilege",
        "admin",
        "code",
        "unknown",
    ] {
        assert!(enum_of("Class").contains(&c.to_string()), "class {c}");
    }

    let paths = doc["paths"].as_object().expect("paths");
    // At least the contract's table (the document may say more).
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/v1/requests"),
        ("get", "/v1/requests/{id}"),
        ("post", "/v1/requests/{id}/approve"),
        ("post", "/v1/requests/{id}/deny"),
        ("get", "/v1/grants"),
        ("delete", "/v1/grants/{id}"),
        ("get", "/v1/sessions"),
        ("get", "/v1/sessions/{id}/events"),
        ("get", "/v1/sessions/{id}/recording"),
        ("get", "/v1/openapi.json"),
    ] {
        assert!(
            paths.get(path).is_some_and(|p| p[method].is_object()),
            "{} {path} is not documented",
            method.to_uppercase()
        );
    }

    // Every documented operation is served by a handler, with the token rules it states.
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let what = format!("{} {path}", method.to_uppercase());
            let url = concrete(path);
            let verb = method.to_uppercase();
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|req| req.get(&bearer).is_some()));
            let responses = op["responses"].as_object().expect("responses");
            for (code, resp) in responses {
                let body_ref = resp["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_default();
                if code.starts_with('4') && code != "409" || code == "503" {
                    assert!(
                        body_ref.ends_with("/ErrorBody"),
                        "{what}: response {code} does not use the error schema: {resp}"
                    );
                }
            }
            // With a token (bob's): a handler answers, whatever it decides.
            let (status, head) = status_of(addr, &verb, &url, Some(BOB_TOKEN));
            assert_ne!(status, 405, "{what}: method not served\n{head}");
            assert!(
                responses.contains_key(&status.to_string()),
                "{what} answered {status}, which the document does not list\n{head}"
            );
            if status == 404 {
                let (_, body) = fx.bob.call(&verb, &url, None);
                assert_error(&what, &(404, body.clone()), 404);
                assert_ne!(
                    body["error"], FALLBACK,
                    "{what} is documented but the router does not serve it"
                );
            }
            // Without one: 401 exactly when the document says a token is needed.
            let (status, head) = status_of(addr, &verb, &url, None);
            if secured {
                assert!(responses.contains_key("401"), "{what}: 401 not documented");
                assert_eq!(status, 401, "{what} without a token\n{head}");
                assert_error(&what, &anon.call(&verb, &url, None), 401);
            } else {
                assert_ne!(status, 401, "{what} is documented as needing no token");
                assert_ne!(status, 404, "{what} without a token\n{head}");
            }
        }
    }
    assert!(operations >= 16, "only {operations} operations documented");

    // The check above can tell a served path from the fallback.
    let (status, body) = fx.bob.get("/v1/no-such-thing");
    assert_eq!(status, 404);
    assert_eq!(body["error"], FALLBACK, "{body}");
}
