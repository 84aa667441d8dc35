//! The web console's HTTP side (issue 18), against the real binary, Postgres and psql: the page
//! and its security headers, the sign-in cookie's flags, CSRF on every cookie request that
//! changes something, sign-out, and that a console cookie sees exactly what the same user's
//! bearer token sees. The browser itself is driven in `console_browser.rs`; session expiry is
//! unit-tested beside the session table (`api::console::session`).

#[path = "support/api.rs"]
mod api;
mod support;

use std::net::SocketAddr;
use std::process::{Child, Stdio};

use api::{ALICE_TOKEN, AUDITOR_TOKEN, BOB_TOKEN, CAROL_TOKEN, DAVE_TOKEN, Fixture, assert_error};
use serde_json::{Value, json};
use support::http::{self, Response};
use support::{ALICE, ALICE_PASSWORD};

/// A signed-in console: the cookie's value and the session's CSRF token.
struct Console {
    addr: SocketAddr,
    cookie: String,
    csrf: String,
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn sign_in_raw(addr: SocketAddr, token: &str, extra: &[(&str, &str)]) -> Response {
    let body = json!({ "token": token }).to_string();
    http::request(addr, "http", "POST", "/console/session", extra, Some(&body))
        .expect("POST /console/session")
}

fn sign_in(addr: SocketAddr, token: &str) -> Console {
    let r = sign_in_raw(addr, token, &[]);
    assert_eq!(r.status, 200, "sign-in: {}", r.body);
    let set = header(&r, "set-cookie").expect("a Set-Cookie header");
    let cookie = set
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("jitgate_console="))
        .expect("the console cookie")
        .to_string();
    let body: Value = serde_json::from_str(&r.body).expect("JSON body");
    Console {
        addr,
        cookie,
        csrf: body["csrf"].as_str().expect("a CSRF token").to_string(),
    }
}

impl Console {
    /// One request with the cookie; `csrf` adds the `X-CSRF-Token` header with that value.
    fn call(&self, method: &str, path: &str, body: Option<&str>, csrf: Option<&str>) -> Response {
        let cookie = format!("jitgate_console={}", self.cookie);
        let mut headers = vec![("Cookie", cookie.as_str())];
        if let Some(c) = csrf {
            headers.push(("X-CSRF-Token", c));
        }
        http::request(self.addr, "http", method, path, &headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        parsed(self.call("GET", path, None, None))
    }
}

fn parsed(r: Response) -> (u16, Value) {
    let v = serde_json::from_str(&r.body).unwrap_or(Value::String(r.body));
    (r.status, v)
}

/// alice's psql running `sql` through jitgate (held by the write rule).
fn alice_psql(fx: &Fixture, sql: &str) -> Child {
    support::psql_cmd(&fx.env.alice(), ALICE_PASSWORD)
        .args(["-v", "VERBOSITY=verbose", "-c", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql")
}

#[test]
fn the_page_and_its_assets_are_embedded_and_served_with_a_strict_policy() {
    let fx = Fixture::new("60s", 3);
    let addr = fx.env.jg.api_addr();
    let page = http::request(addr, "http", "GET", "/", &[], None).expect("GET /");
    assert_eq!(page.status, 200);
    assert!(header(&page, "content-type").is_some_and(|v| v.starts_with("text/html")));
    assert!(page.body.contains("name=\"token\""), "{}", page.body);
    // No inline script: every <script> names its file.
    for tag in page.body.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap_or_default();
        assert!(
            open.contains("src=\"/console/"),
            "inline script: <script{open}>"
        );
    }
    for path in [
        "/",
        "/console/app.js",
        "/console/render.js",
        "/console/player.js",
        "/console/console.css",
    ] {
        let r = http::request(addr, "http", "GET", path, &[], None).expect("GET asset");
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.is_empty(), "{path} is empty");
        let csp = header(&r, "content-security-policy").unwrap_or_default();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: CSP {csp:?} lacks {part}");
        }
        assert!(!csp.contains("unsafe"), "{path}: CSP {csp:?}");
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
    }
    // No script writes user data through innerHTML.
    for path in [
        "/console/app.js",
        "/console/render.js",
        "/console/player.js",
    ] {
        let (_, js) = http::get(addr, "http", path).expect("GET script");
        assert!(!js.contains("innerHTML"), "{path} uses innerHTML");
    }
}

#[test]
fn sign_in_sets_a_strict_expiring_cookie_secure_only_behind_tls() {
    let fx = Fixture::new("60s", 3);
    let addr = fx.env.jg.api_addr();
    let r = sign_in_raw(addr, BOB_TOKEN, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let set = header(&r, "set-cookie").expect("Set-Cookie");
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    for want in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(attrs.contains(&want), "{set} lacks {want}");
    }
    assert!(
        !attrs.contains(&"Secure"),
        "plain HTTP: no Secure flag: {set}"
    );
    let body: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(body["user"], "bob");
    assert!(
        body["csrf"].as_str().is_some_and(|c| c.len() >= 32),
        "{body}"
    );
    assert!(!r.body.contains(BOB_TOKEN), "the token is not echoed");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let r = sign_in_raw(addr, BOB_TOKEN, &[("X-Forwarded-Proto", "https")]);
    let set = header(&r, "set-cookie").expect("Set-Cookie");
    assert!(set.split(';').any(|a| a.trim() == "Secure"), "{set}");

    // A wrong token, a form post and no body set no cookie.
    let bad = sign_in_raw(addr, "not-a-token", &[]);
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(header(&bad, "set-cookie").is_none());
    let form = http::request(
        addr,
        "http",
        "POST",
        "/console/session",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        None,
    )
    .expect("form POST");
    assert_eq!(form.status, 400, "{}", form.body);
    assert!(header(&form, "set-cookie").is_none());

    // The session says who is signed in, with the CSRF token, and works on the API.
    let bob = sign_in(addr, BOB_TOKEN);
    let (status, me) = bob.get("/console/session");
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"], "bob");
    assert_eq!(me["csrf"], bob.csrf.as_str());
    assert_eq!(bob.get("/v1/requests").0, 200);
    // Signing in again from the same browser replaces its session.
    let cookie = format!("jitgate_console={}", bob.cookie);
    let renewed = sign_in_raw(addr, BOB_TOKEN, &[("Cookie", &cookie)]);
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert_error("replaced session", &bob.get("/v1/requests"), 401);
    // A made-up cookie is not a session.
    let forged = Console {
        cookie: "00".repeat(32),
        ..sign_in(addr, BOB_TOKEN)
    };
    assert_error("forged cookie", &forged.get("/v1/requests"), 401);
}

#[test]
fn every_cookie_request_that_changes_something_needs_the_csrf_token() {
    let fx = Fixture::new("60s", 3);
    let addr = fx.env.jg.api_addr();
    let child = alice_psql(&fx, "DELETE FROM t WHERE id = 1");
    let id = api::wait_for_pending(&fx.bob, ALICE)["id"]
        .as_str()
        .expect("request id")
        .to_string();
    let bob = sign_in(addr, BOB_TOKEN);
    let body = json!({ "reason": "not now" }).to_string();
    let deny = format!("/v1/requests/{id}/deny");
    for (what, csrf) in [
        ("no CSRF header", None),
        ("an empty one", Some(String::new())),
        ("another session's", Some(sign_in(addr, BOB_TOKEN).csrf)),
        (
            "a truncated one",
            Some(bob.csrf[..bob.csrf.len() - 1].to_string()),
        ),
    ] {
        let r = bob.call("POST", &deny, Some(&body), csrf.as_deref());
        assert_error(what, &parsed(r), 403);
    }
    // Nothing happened: still pending, the row still there, psql still waiting.
    assert_eq!(fx.bob.request(&id)["state"], "pending");
    assert_eq!(fx.row("t", 1), Some(0));
    let revoke = bob.call("DELETE", "/v1/grants/nope", None, None);
    assert_error("revoke without CSRF", &parsed(revoke), 403);
    let out_before = bob.call("DELETE", "/console/session", None, None);
    assert_error("sign-out without CSRF", &parsed(out_before), 403);
    assert_eq!(bob.get("/v1/requests").0, 200, "the session survived");

    // With the token the denial goes through, as bob.
    let r = bob.call("POST", &deny, Some(&body), Some(&bob.csrf));
    assert_eq!(r.status, 200, "{}", r.body);
    let out = child.wait_with_output().expect("psql ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("42501"),
        "{stderr}"
    );
    assert!(stderr.contains("not now"), "{stderr}");
    assert_eq!(fx.row("t", 1), Some(0), "a denied DELETE deleted nothing");
    let decided = fx.bob.request(&id);
    assert_eq!(decided["state"], "denied");
    assert_eq!(decided["decided_by"], "bob");

    // The bearer API is unchanged: no CSRF header needed there.
    let (status, v) = fx
        .bob
        .post("/v1/requests/nope/deny", &json!({"reason": "x"}));
    assert_eq!(status, 404, "{v}");
}

#[test]
fn sign_out_ends_the_session_and_deletes_the_cookie() {
    let fx = Fixture::new("60s", 3);
    let addr = fx.env.jg.api_addr();
    let bob = sign_in(addr, BOB_TOKEN);
    let other = sign_in(addr, BOB_TOKEN);
    let r = bob.call("DELETE", "/console/session", None, Some(&bob.csrf));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"signed_out\":true"), "{}", r.body);
    let set = header(&r, "set-cookie").expect("Set-Cookie");
    assert!(
        set.starts_with("jitgate_console=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    assert_error("after sign-out", &bob.get("/v1/requests"), 401);
    assert_error("after sign-out", &bob.get("/console/session"), 401);
    assert_eq!(other.get("/v1/requests").0, 200, "other sessions live on");
    let again = bob.call("DELETE", "/console/session", None, Some(&bob.csrf));
    assert!(
        again.body.contains("\"signed_out\":false"),
        "{}",
        again.body
    );
}

#[test]
fn a_cookie_sees_exactly_what_the_same_users_token_sees() {
    let fx = Fixture::with_auditors("60s", 3, &["group:security"], |b| b);
    let addr = fx.env.jg.api_addr();
    // One decided and one pending request of alice's, so every list has something in it.
    let first = alice_psql(&fx, "DELETE FROM t WHERE id = 1");
    let id1 = api::wait_for_pending(&fx.bob, ALICE)["id"]
        .as_str()
        .expect("id")
        .to_string();
    fx.bob.approve_ok(&id1, "fine", Some(600));
    let out = first.wait_with_output().expect("psql ends");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DELETE 1"));
    let second = alice_psql(&fx, "UPDATE t SET v = 5 WHERE id = 2");
    let pending = api::wait_for_pending(&fx.bob, ALICE);
    let id2 = pending["id"].as_str().expect("id").to_string();
    let session = pending["session"].as_str().expect("session").to_string();

    for (who, token) in [
        ("alice", ALICE_TOKEN),
        ("bob", BOB_TOKEN),
        ("carol", CAROL_TOKEN),
        ("dave", DAVE_TOKEN),
        ("audrey", AUDITOR_TOKEN),
    ] {
        let bearer = fx.bob.with_token(Some(token));
        let console = sign_in(addr, token);
        for path in [
            "/v1/requests".to_string(),
            "/v1/requests?state=pending".to_string(),
            format!("/v1/requests/{id1}"),
            format!("/v1/requests/{id2}"),
            "/v1/grants".to_string(),
            "/v1/sessions".to_string(),
            format!("/v1/sessions/{session}"),
            format!("/v1/sessions/{session}/events"),
            "/v1/audit/verify".to_string(),
        ] {
            // The audit writer may still be finishing the first session: a difference that
            // lasts is a failure, one that settles is not.
            let mut tries = 0;
            let (by_token, by_cookie) = loop {
                let pair = (bearer.get(&path), console.get(&path));
                tries += 1;
                if pair.0 == pair.1 || tries == 10 {
                    break pair;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            };
            assert_eq!(
                by_cookie, by_token,
                "{who}: GET {path} by cookie and by token"
            );
        }
    }
    // The answers differ between users (so the comparison above could fail).
    let can_decide =
        |token: &str| fx.bob.with_token(Some(token)).request(&id2)["can_decide"].clone();
    assert_eq!(can_decide(BOB_TOKEN), true);
    assert_eq!(can_decide(ALICE_TOKEN), false, "not one's own request");
    assert_eq!(
        can_decide(AUDITOR_TOKEN),
        false,
        "an auditor sees, not decides"
    );
    assert_error(
        "dave",
        &fx.bob
            .with_token(Some(DAVE_TOKEN))
            .get(&format!("/v1/requests/{id2}")),
        404,
    );
    assert_eq!(fx.bob.request(&id2)["max_grant_secs"], 1800);
    let grants = fx.alice.grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["can_revoke"], true, "the grantee may revoke");
    assert_eq!(
        fx.audrey.grants()[0]["can_revoke"],
        false,
        "an auditor may not"
    );

    fx.bob.deny_ok(&id2, "done testing");
    let out = second.wait_with_output().expect("psql ends");
    assert!(!out.status.success());
}

/// `GET /v1/requests/stream` with the console's cookie; the response is read as it comes.
fn open_stream(console: &Console) -> std::net::TcpStream {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(console.addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(
        tcp,
        "GET /v1/requests/stream HTTP/1.1\r\nHost: {}\r\nCookie: jitgate_console={}\r\n\
         Connection: close\r\n\r\n",
        console.addr, console.cookie
    )
    .expect("send");
    tcp
}

/// Reads until `stop` holds for what came so far, or the server closes; returns it all.
fn read_stream(tcp: &mut std::net::TcpStream, stop: impl Fn(&str) -> bool) -> (String, bool) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("stream read: {e}; so far {}", String::from_utf8_lossy(&got)),
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        if stop(&text) {
            return (text, false);
        }
    }
}

#[test]
fn the_event_stream_ends_with_the_console_session() {
    let fx = Fixture::new("60s", 3);
    let addr = fx.env.jg.api_addr();
    let signed_out = sign_in(addr, BOB_TOKEN);
    let still_in = sign_in(addr, BOB_TOKEN);
    let mut ending = open_stream(&signed_out);
    let mut staying = open_stream(&still_in);
    let (head, _) = read_stream(&mut ending, |t| t.contains("\r\n\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let child = alice_psql(&fx, "DELETE FROM t WHERE id = 1");
    let id = api::wait_for_pending(&fx.bob, ALICE)["id"]
        .as_str()
        .expect("id")
        .to_string();
    for stream in [&mut ending, &mut staying] {
        let (seen, closed) = read_stream(stream, |t| t.contains(&id));
        assert!(!closed && seen.contains("event: request"), "{seen}");
    }
    let out = signed_out.call("DELETE", "/console/session", None, Some(&signed_out.csrf));
    assert_eq!(out.status, 200, "{}", out.body);
    fx.bob.deny_ok(&id, "stream test");
    let (after, closed) = read_stream(&mut ending, |_| false);
    assert!(closed, "the stream of a signed-out session ends");
    assert!(!after.contains("denied"), "nothing after sign-out: {after}");
    let (other, _) = read_stream(&mut staying, |t| t.contains("denied"));
    assert!(other.contains("stream test"), "{other}");
    let _ = child.wait_with_output();
}
