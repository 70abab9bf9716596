//! Brute-force defences over HTTP: per-IP buckets, the per-account soft
//! lock (identical for unknown names), and both surviving a restart.

use serde_json::json;

use crate::support::{TestServer, PASSWORD};

fn login(
    s: &TestServer,
    client_id: &str,
    secret: &str,
    user: &str,
    pw: &str,
) -> crate::support::Resp {
    s.post(
        "/auth/login",
        &json!({"client_id": client_id, "client_secret": secret, "username": user, "password": pw}),
    )
}

#[test]
fn the_per_ip_bucket_answers_429_with_retry_after_and_refills() {
    let s = TestServer::start_with(|c| {
        c.limits.login_burst = 3.0;
        c.limits.login_per_minute = 6.0;
        c.limits.free_failures = 100;
    });
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    for _ in 0..3 {
        assert_eq!(
            login(&s, &c.client_id, &secret, "alice", "wrong-wrong").status,
            401
        );
    }
    let r = login(&s, &c.client_id, &secret, "alice", PASSWORD);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(r.json()["error"]["statusCode"], 429);
    assert_eq!(
        s.get("/healthz").status,
        200,
        "other endpoints are not limited"
    );
    s.advance(10);
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", PASSWORD).status,
        200
    );
}

#[test]
fn the_soft_lock_delays_known_and_unknown_names_alike() {
    let s = TestServer::start_with(|c| {
        c.limits.free_failures = 3;
        c.limits.login_burst = 100.0;
    });
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        known.push(login(&s, &c.client_id, &secret, "alice", "wrong-wrong"));
        unknown.push(login(&s, &c.client_id, &secret, "mallory", "wrong-wrong"));
    }
    let statuses = |v: &[crate::support::Resp]| v.iter().map(|r| r.status).collect::<Vec<_>>();
    // Three free failures, then the fourth attempt waits (issue 8: it used
    // to be the fifth).
    assert_eq!(statuses(&known), vec![401, 401, 401, 429, 429]);
    assert_eq!(statuses(&unknown), statuses(&known));
    assert_eq!(known[4].body, unknown[4].body);
    assert_eq!(
        known[4].header("retry-after"),
        unknown[4].header("retry-after")
    );
    // Locked: even the right password waits.
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", PASSWORD).status,
        429
    );
    s.advance(2);
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", PASSWORD).status,
        200
    );
    // A success clears the count.
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", "wrong-wrong").status,
        401
    );
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", PASSWORD).status,
        200
    );
}

#[test]
fn the_soft_lock_survives_a_restart() {
    let mut s = TestServer::start_with(|c| c.limits.free_failures = 2);
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", "wrong-wrong").status,
        401
    );
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", "wrong-wrong").status,
        401
    );
    s.restart();
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", PASSWORD).status,
        429
    );
    s.advance(2);
    assert_eq!(
        login(&s, &c.client_id, &secret, "alice", PASSWORD).status,
        200
    );
}

#[test]
fn the_per_ip_bucket_survives_a_restart() {
    let mut s = TestServer::start_with(|c| {
        c.limits.login_burst = 2.0;
        c.limits.login_per_minute = 1.0;
    });
    let (c, secret) = s.add_client();
    assert_eq!(
        login(&s, &c.client_id, &secret, "bob", "wrong-wrong").status,
        401
    );
    assert_eq!(
        login(&s, &c.client_id, &secret, "carol", "wrong-wrong").status,
        401
    );
    s.restart();
    let r = login(&s, &c.client_id, &secret, "dave", "wrong-wrong");
    assert_eq!(
        r.status, 429,
        "the bucket was saved at shutdown: {}",
        r.body
    );
}

#[test]
fn refresh_has_its_own_budget() {
    let s = TestServer::start_with(|c| {
        c.limits.token_burst = 2.0;
        c.limits.token_per_minute = 1.0;
    });
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let mut t = s.login_token(&c, &secret, "alice");
    for _ in 0..2 {
        let r = s.post(
            "/auth/token-refresh",
            &json!({"refreshToken": t["refreshToken"]}),
        );
        assert_eq!(r.status, 200);
        t = r.json();
    }
    let r = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        s.get_auth("/auth/me", t["accessToken"].as_str().unwrap())
            .status,
        200
    );
}
