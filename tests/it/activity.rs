//! The login-activity API (issue 10): rows written by every dialect, read
//! back through GET /login-activity, /count, /{id} and /active-users with
//! the LoopBack filter, who may read them, retention, and the CLI.

use std::time::{Duration, Instant};

use hallpass::accounts::{self, NewUser, User};
use hallpass::http::percent_encode;
use hallpass::{db, password};
use serde_json::{json, Value};

use crate::support::{TestServer, ITERATIONS, PASSWORD};

/// A server admin; returns them and an access token of theirs.
fn admin(s: &TestServer) -> (User, String) {
    let mut conn = s.conn();
    let new = NewUser {
        email: Some("root@example.com".into()),
        username: Some("root".into()),
        password_hash: Some(password::hash(PASSWORD, ITERATIONS).unwrap()),
        role: "admin".into(),
        ..NewUser::default()
    };
    let user = db::immediate(&mut conn, |tx| accounts::create_user(tx, &new, s.now())).unwrap();
    let r = s.post(
        "/auth/token",
        &json!({"email": "root@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (user, r.json()["access_token"].as_str().unwrap().to_string())
}

/// An API key of `tenant` with `scopes`.
fn key(s: &TestServer, tenant: &str, scopes: &[&str]) -> String {
    let mut conn = s.conn();
    let scopes: Vec<String> = scopes.iter().map(|x| x.to_string()).collect();
    db::immediate(&mut conn, |tx| {
        accounts::create_api_key(tx, "reader", tenant, &scopes, 0)
    })
    .unwrap()
    .1
}

/// GET `path` with `?name=<json>`.
fn with_json(path: &str, name: &str, v: &Value) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{name}={}", percent_encode(&v.to_string()))
}

/// The ids of a GET /login-activity answer, checked to be a 200.
fn list(s: &TestServer, token: &str, filter: Value) -> Vec<Value> {
    let r = s.get_auth(&with_json("/login-activity", "filter", &filter), token);
    assert_eq!(r.status, 200, "{filter}: {}", r.body);
    r.json().as_array().unwrap().clone()
}

/// Signs ann and bob in through three dialects, fails once, logs out once.
fn traffic(s: &TestServer) -> (User, User) {
    let ann = s.add_user("ann@example.com");
    let bob = s.add_user("bob@example.com");
    let (client, secret) = s.add_client();
    let t = s.login_token(&client, &secret, "ann@example.com");
    s.advance(10);
    let yat = s.post(
        "/auth/token",
        &json!({"email": "bob@example.com", "password": PASSWORD}),
    );
    assert_eq!(yat.status, 200, "{}", yat.body);
    s.advance(10);
    let mfa = s.post(
        "/api/login",
        &json!({"username": "bob", "password": PASSWORD}),
    );
    assert_eq!(mfa.status, 200, "{}", mfa.body);
    s.advance(10);
    let wrong = s.post(
        "/auth/login-token",
        &json!({"client_id": client.client_id, "client_secret": secret,
                "username": "ann@example.com", "password": "wrong-password-1"}),
    );
    assert_eq!(wrong.status, 401);
    s.advance(10);
    let out = s.send_auth(
        "POST",
        "/logout",
        t["accessToken"].as_str().unwrap(),
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(out.status, 200, "{}", out.body);
    s.advance(10);
    (ann, bob)
}

#[test]
fn activity_is_for_admins_and_keys_with_activity_read() {
    let s = TestServer::start();
    let (ann, _) = traffic(&s);
    let (_, root) = admin(&s);
    let tenant = ann.default_tenant_id.clone().unwrap();
    for path in [
        "/login-activity",
        "/login-activity/count",
        "/login-activity/nope",
        "/active-users/daily",
    ] {
        assert_eq!(s.get(path).status, 401, "{path}");
        assert_eq!(s.get_auth(path, "forged").status, 401, "{path}");
        let (client, secret) = s.add_client();
        let user = s.login_token(&client, &secret, "bob@example.com");
        let r = s.get_auth(path, user["accessToken"].as_str().unwrap());
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        let r = s.get_auth(path, &key(&s, &tenant, &["users:read"]));
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    assert_eq!(s.get_auth("/login-activity", &root).status, 200);
    let k = key(&s, &tenant, &["activity:read"]);
    assert_eq!(s.get_auth("/login-activity", &k).status, 200);
    // A key of another tenant sees none of this tenant's rows.
    let other = {
        let mut conn = s.conn();
        db::immediate(&mut conn, |tx| {
            accounts::create_tenant(tx, "elsewhere", None, 0)
        })
        .unwrap()
    };
    let k2 = key(&s, &other.id, &["activity:read"]);
    assert_eq!(list(&s, &k2, json!({})), Vec::<Value>::new());
    assert!(!list(&s, &k, json!({})).is_empty());
}

#[test]
fn every_dialect_writes_rows_and_every_operator_finds_them() {
    let s = TestServer::start();
    let (ann, bob) = traffic(&s);
    let (root_user, root) = admin(&s);
    let all = list(&s, &root, json!({}));
    // Newest first: root's sign-in, the logout, the refusal, mfa, yat, native.
    let kinds: Vec<&str> = all
        .iter()
        .map(|r| r["loginType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ACCESS", "LOGOUT", "FAILED", "RELOGIN", "ACCESS", "ACCESS"]
    );
    for r in &all {
        for f in ["id", "loginTime", "loginType", "tokenPayload", "ipAddress"] {
            assert!(r.get(f).is_some(), "{f} missing in {r}");
        }
        // Ours, beyond SourceLoop's model (which allows no other
        // properties): only when a filter's `fields` asks for them.
        for f in ["outcome", "clientId"] {
            assert!(r.get(f).is_none(), "{f} unasked in {r}");
        }
        let payload: Value = serde_json::from_str(r["tokenPayload"].as_str().unwrap()).unwrap();
        assert!(
            payload["method"].is_string() && payload["amr"].is_array(),
            "{payload}"
        );
        assert!(
            !r["tokenPayload"].as_str().unwrap().contains("ey"),
            "no token in {r}"
        );
    }
    let asked = list(
        &s,
        &root,
        json!({"fields": ["id", "outcome", "clientId", "loginType"]}),
    );
    assert_eq!(asked[2]["outcome"], "invalid_credentials");
    assert!(
        asked.iter().any(|r| r["clientId"].is_string()),
        "the native sign-in's client: {asked:?}"
    );
    let off = list(&s, &root, json!({"fields": {"deviceInfo": false}}));
    assert!(off[0].get("outcome").is_none() && off[0].get("deviceInfo").is_none());
    let on = list(&s, &root, json!({"fields": {"outcome": true}}));
    assert_eq!(on[2]["outcome"], "invalid_credentials");
    assert_eq!(all[2]["actor"], ann.id.as_str());

    let ids = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let id_of = |i: usize| all[i]["id"].as_str().unwrap().to_string();
    let time_of = |i: usize| all[i]["loginTime"].as_str().unwrap().to_string();

    let q = |f: Value| ids(list(&s, &root, f));
    assert_eq!(q(json!({"where": {"actor": bob.id}})), [id_of(3), id_of(4)]);
    assert_eq!(q(json!({"where": {"actor": {"eq": bob.id}}})).len(), 2);
    assert_eq!(
        q(json!({"where": {"loginType": {"neq": "ACCESS"}}})),
        [id_of(1), id_of(2), id_of(3)]
    );
    assert_eq!(
        q(json!({"where": {"loginTime": {"gt": time_of(2)}}})),
        [id_of(0), id_of(1)]
    );
    assert_eq!(
        q(json!({"where": {"loginTime": {"gte": time_of(2)}}})).len(),
        3
    );
    assert_eq!(
        q(json!({"where": {"loginTime": {"lt": time_of(4)}}})),
        [id_of(5)]
    );
    assert_eq!(
        q(json!({"where": {"loginTime": {"lte": time_of(4)}}})).len(),
        2
    );
    assert_eq!(
        q(json!({"where": {"loginTime": {"between": [time_of(3), time_of(1)]}}})),
        [id_of(1), id_of(2), id_of(3)]
    );
    assert_eq!(
        q(json!({"where": {"actor": {"inq": [ann.id, root_user.id]}}})).len(),
        4
    );
    assert_eq!(
        q(json!({"where": {"actor": {"nin": [ann.id, root_user.id]}}})),
        [id_of(3), id_of(4)]
    );
    assert_eq!(
        q(json!({"where": {"tokenPayload": {"like": "%\"MAGIC%"}}})).len(),
        0
    );
    assert_eq!(
        q(json!({"where": {"tokenPayload": {"like": "%LOGOUT%"}}})),
        [id_of(1)]
    );
    assert_eq!(
        q(
            json!({"where": {"or": [{"loginType": "FAILED"}, {"and": [{"actor": bob.id}, {"loginType": "RELOGIN"}]}]}})
        ),
        [id_of(2), id_of(3)]
    );
    // order, limit, skip/offset, fields
    assert_eq!(
        q(json!({"order": "loginTime ASC", "limit": 2})),
        [id_of(5), id_of(4)]
    );
    assert_eq!(
        q(json!({"order": ["loginType DESC", "loginTime DESC"], "limit": 1})),
        [id_of(3)]
    );
    assert_eq!(q(json!({"skip": 4})), [id_of(4), id_of(5)]);
    assert_eq!(q(json!({"offset": 5, "limit": 10})), [id_of(5)]);
    let slim = list(
        &s,
        &root,
        json!({"fields": ["id", "loginType"], "limit": 1}),
    );
    assert_eq!(slim, [json!({"id": id_of(0), "loginType": "ACCESS"})]);

    // count
    let count = |w: Option<Value>| {
        let path = match &w {
            Some(w) => with_json("/login-activity/count", "where", w),
            None => "/login-activity/count".into(),
        };
        let r = s.get_auth(&path, &root);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["count"].as_i64().unwrap()
    };
    assert_eq!(count(None), 6);
    assert_eq!(count(Some(json!({"loginType": "ACCESS"}))), 3);

    // one row, with fields; 404 for an unknown id
    let one = s.get_auth(&format!("/login-activity/{}", id_of(2)), &root);
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), all[2]);
    let path = with_json(
        &format!("/login-activity/{}", id_of(2)),
        "filter",
        &json!({"fields": {"actor": true}}),
    );
    assert_eq!(s.get_auth(&path, &root).json(), json!({"actor": ann.id}));
    let missing = s.get_auth("/login-activity/no-such-id", &root);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["statusCode"], 404);
}

#[test]
fn the_deep_object_form_reads_like_the_json_form() {
    let s = TestServer::start();
    let (ann, _) = traffic(&s);
    let (_, root) = admin(&s);
    let all = list(&s, &root, json!({}));
    let t = percent_encode(all[3]["loginTime"].as_str().unwrap());
    let path = format!(
        "/login-activity?filter[where][actor]={}&filter[where][loginTime][lt]={t}&filter[limit]=5&filter[order]=loginTime%20ASC",
        ann.id
    );
    let r = s.get_auth(&path, &root);
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["loginType"], "ACCESS");
    let path = "/login-activity?filter[where][loginType][inq]=FAILED&filter[where][loginType][inq]=LOGOUT&filter[fields][0]=loginType";
    let r = s.get_auth(path, &root);
    assert_eq!(
        r.json(),
        json!([{"loginType": "LOGOUT"}, {"loginType": "FAILED"}])
    );
    let r = s.get_auth("/login-activity/count?where[loginType]=FAILED", &root);
    assert_eq!(r.json(), json!({"count": 1}));
}

#[test]
fn bad_filters_are_400s_that_name_the_part() {
    let s = TestServer::start();
    let (_, root) = admin(&s);
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    for (filter, part) in [
        ("{\"where\":".to_string(), "filter: malformed JSON"),
        (
            json!({"where": {"password": "x"}}).to_string(),
            "filter.where: unknown field \"password\"",
        ),
        (
            json!({"where": {"actor": {"regexp": "a"}}}).to_string(),
            "filter.where.actor: unknown operator",
        ),
        (
            json!({"where": {"loginTime": {"gt": "last tuesday"}}}).to_string(),
            "filter.where.loginTime.gt",
        ),
        (
            json!({"where": {"actor": {"inq": many}}}).to_string(),
            "filter.where.actor.inq: more than 1000",
        ),
        (json!({"limit": 5000}).to_string(), "filter.limit"),
        (json!({"order": "actor UP"}).to_string(), "filter.order"),
        (
            json!({"where": {"actor) OR 1=1 --": "x"}}).to_string(),
            "unknown field",
        ),
    ] {
        let r = s.get_auth(
            &format!("/login-activity?filter={}", percent_encode(&filter)),
            &root,
        );
        assert_eq!(r.status, 400, "{filter}: {}", r.body);
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(part), "{filter}: {message}");
    }
    let r = s.get_auth("/login-activity/count?where=%7Bnope", &root);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("where: malformed JSON"));
    let r = s.get_auth("/active-users/daily?startDate=yesterday", &root);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("startDate"), "{}", r.body);
    let r = s.get_auth("/active-users/weekly", &root);
    assert_eq!(r.status, 404);
    let r = s.get_auth(
        "/active-users/daily?startDate=2020-01-01&endDate=2025-01-01",
        &root,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("endDate"), "{}", r.body);
    // The store is untouched by any of it.
    assert_eq!(list(&s, &root, json!({})).len(), 1);
}

#[test]
fn active_users_are_one_entry_per_actor_per_day_or_month() {
    let s = TestServer::start();
    // 01:00 UTC tomorrow, so that the traffic stays in one day.
    s.advance(86_400 - s.now().rem_euclid(86_400) + 3600);
    let (ann, bob) = traffic(&s);
    let (client, secret) = s.add_client();
    s.advance(86_400);
    s.login_token(&client, &secret, "ann@example.com");
    let (_, root) = admin(&s);
    let today = hallpass::clock::iso8601(s.now())[..10].to_string();
    let yesterday = hallpass::clock::iso8601(s.now() - 86_400)[..10].to_string();
    let start = hallpass::clock::iso8601(s.now() - 3 * 86_400);
    let path = format!(
        "/active-users/daily?startDate={}&endDate={today}",
        percent_encode(&start)
    );
    let r = s.get_auth(&path, &root);
    assert_eq!(r.status, 200, "{}", r.body);
    let days = r.json();
    // Yesterday: ann (native) and bob (yat then mfa: once, as RELOGIN, his
    // latest). Today: ann again, and root.
    let y = &days[&yesterday];
    assert!(y.is_object(), "{yesterday}: {days}");
    let actors = |v: &Value| -> Vec<String> {
        let mut a: Vec<String> = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"))
            .values()
            .flat_map(|l| {
                l.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["actor"].as_str().unwrap().to_string())
            })
            .collect();
        a.sort();
        a
    };
    let mut want = vec![ann.id.clone(), bob.id.clone()];
    want.sort();
    assert_eq!(actors(y), want, "{days}");
    assert_eq!(y["RELOGIN"][0]["actor"], bob.id.as_str());
    assert_eq!(actors(&days[&today]).len(), 2, "{days}");
    assert!(days[&today]["ACCESS"][0]["loginTime"].is_string());

    // Monthly, only bob (by name), then everyone but bob (by id).
    let month = {
        let iso = hallpass::clock::iso8601(s.now());
        format!("{}-{}", &iso[5..7], &iso[..4])
    };
    let f = json!({"inclusion": true, "userIdentity": "userName", "userIdentifier": ["bob"]});
    let path = with_json(
        &format!("/active-users/monthly?startDate={}", &start[..10]),
        "filter",
        &f,
    );
    let r = s.get_auth(&path, &root);
    assert_eq!(r.status, 200, "{}", r.body);
    let months = r.json();
    let this_month = months.get(&month).cloned().unwrap_or_else(|| {
        // The test ran across a month's end: bob is in the previous one.
        months.as_object().unwrap().values().next().unwrap().clone()
    });
    assert_eq!(actors(&this_month), vec![bob.id.clone()], "{months}");
    let path = format!(
        "/active-users/monthly?startDate={}&filter[inclusion]=false&filter[userIdentity]=actorId&filter[userIdentifier][0]={}",
        &start[..10],
        bob.id
    );
    let months = s.get_auth(&path, &root).json();
    let everyone: Vec<String> = months
        .as_object()
        .unwrap()
        .values()
        .flat_map(actors)
        .collect();
    assert!(
        !everyone.contains(&bob.id) && everyone.contains(&ann.id),
        "{months}"
    );
}

#[test]
fn rows_past_retention_are_swept_in_the_background() {
    let s = TestServer::start_with(|c| c.activity_retention_days = 30);
    traffic(&s);
    let before = s
        .conn()
        .query_row("SELECT count(*) FROM login_activity", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(before, 5);
    s.advance(29 * 86_400);
    let (_, root) = admin(&s);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        list(&s, &root, json!({})).len(),
        6,
        "nothing is old enough yet"
    );
    s.advance(2 * 86_400);
    // The background thread looks once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM login_activity", [], |r| r.get(0))
            .unwrap();
        if left == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} rows left");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_cli_lists_the_last_sign_ins() {
    let s = TestServer::start();
    let (ann, _) = traffic(&s);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hallpass"))
            .arg("activity")
            .args(args)
            .arg("--db")
            .arg(&s.db)
            .env_remove("HALLPASS_CONFIG")
            .env_remove("HALLPASS_DB")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let table = run(&["--last", "3"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("TIME"));
    assert!(
        lines[1].contains("LOGOUT") && lines[1].contains("ann@example.com"),
        "{table}"
    );
    assert!(
        lines[2].contains("FAILED") && lines[2].contains("invalid_credentials"),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&run(&["--json", "--user", "ann", "--outcome", "success"])).unwrap();
    let kinds: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["loginType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["LOGOUT", "ACCESS"]);
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["actor"] == ann.id.as_str()));
    let failed: Value = serde_json::from_str(&run(&["--json", "--outcome", "failed"])).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 1);
}

#[test]
fn access_tokens_carry_the_auth_user_id() {
    use base64::Engine;
    let s = TestServer::start();
    let ann = s.add_user("ann@example.com");
    let (client, secret) = s.add_client();
    let t = s.login_token(&client, &secret, "ann@example.com");
    let token = t["accessToken"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["id"], ann.id.as_str());
    assert_eq!(claims["sub"], ann.id.as_str());
    assert_eq!(claims["username"], "ann");
    assert_eq!(claims["email"], "ann@example.com");
    // Small: no profile beyond what identifies the user.
    assert!(claims.get("name").is_none() && claims.get("createdAt").is_none());
    assert!(token.len() < 1024, "{} bytes", token.len());
}
