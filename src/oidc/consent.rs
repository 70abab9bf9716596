//! Consent (OpenID Connect Core 1.0 §3.1.2.4): what a person lets an app
//! know about them. A client registered with `consent` (not first-party)
//! gets a code only after its person allowed the scopes it asks for; the
//! grant is kept (`consents` table) so the next sign-in to the same app
//! with the same or fewer scopes does not ask again. A wider scope asks
//! again, and the grant becomes the union. `prompt=consent` always asks.
//!
//! The consent form carries the authorization request across the page as
//! hidden fields, which the browser could change. So the request travels
//! sealed: an HMAC-SHA256 (key derived from the master key for this
//! purpose alone) over the browser session's id hash and the request's
//! text. A form whose request was changed, or that was shown to another
//! browser session, is refused; a sealed one is still checked again from
//! the start when it comes back (client, redirect URI, scope, PKCE), since
//! the client's registration may have changed meanwhile (`authorize::decide`).
//!
//! Withdrawing a consent deletes its row and ends what it granted: the
//! app's provider sessions of that person (refresh tokens, and the access
//! tokens of those sessions at userinfo and introspection) and its unused
//! codes.
//!
//! A consent client gets a person's identity only here, at the provider,
//! after that person's consent: the dialect APIs' sign-ins that name a
//! client by its id (social sign-in, emailed sign-in codes, fast sign-up)
//! have no consent step, so they refuse one (`provider_only`). Without
//! that, a plain link to `/auth/google?client_id=` would sign a person in
//! to the app, silently when the provider remembers them (review 13).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::accounts::Client;
use crate::crypto::{b64url, ct_eq, hmac_sha256, MasterKey};
use crate::error::Error;
use crate::oidc::browser::BrowserSession;
use crate::oidc::split_scope;
use crate::url::{percent_decode, percent_encode};

/// Refuses a consent client at a sign-in outside the provider (the
/// dialect APIs'): it must sign people in through `/oauth2/authorize`,
/// where they are asked. Ok for a first-party client.
pub fn provider_only(client: &Client) -> Result<(), Error> {
    if client.consent {
        return Err(Error::BadRequest(
            "This app asks for people's consent: it must sign them in through \
             /oauth2/authorize (OpenID Connect), not this API"
                .into(),
        ));
    }
    Ok(())
}

/// A person's consent to one app, as the account page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consent {
    pub client_id: String,
    /// The app's name (the client's).
    pub client_name: String,
    /// The scopes granted so far, in the order first granted.
    pub scopes: Vec<String>,
    /// Unix seconds of the first grant and of the last one that widened it.
    pub granted_at: i64,
    pub updated_at: i64,
}

/// The scopes `user_id` has granted `client_id`, space-separated, if any.
pub fn granted(conn: &Connection, user_id: &str, client_id: &str) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached("SELECT scope FROM consents WHERE user_id = ?1 AND client_id = ?2")?
        .query_row(params![user_id, client_id], |r| r.get(0))
        .optional()?)
}

/// True when every scope of `asked` is in `granted`.
pub fn covers(granted: &str, asked: &str) -> bool {
    let have = split_scope(granted);
    split_scope(asked).iter().all(|s| have.contains(s))
}

/// Records that `user_id` allowed `client_id` the scopes of `scope`: a new
/// row, or the old one widened to the union. In the caller's transaction
/// (the one that issues the code).
pub fn grant(
    tx: &Connection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    now: i64,
) -> Result<(), Error> {
    let mut all = split_scope(&granted(tx, user_id, client_id)?.unwrap_or_default());
    for s in split_scope(scope) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    tx.prepare_cached(
        "INSERT INTO consents (user_id, client_id, scope, granted_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (user_id, client_id) DO UPDATE
            SET scope = excluded.scope,
                updated_at = CASE WHEN consents.scope = excluded.scope
                                  THEN consents.updated_at ELSE excluded.updated_at END",
    )?
    .execute(params![user_id, client_id, all.join(" "), now])?;
    Ok(())
}

/// A person's consents, the most recently changed first.
pub fn list(conn: &Connection, user_id: &str) -> Result<Vec<Consent>, Error> {
    let mut st = conn.prepare_cached(
        "SELECT c.client_id, k.name, c.scope, c.granted_at, c.updated_at
           FROM consents c JOIN clients k ON k.client_id = c.client_id
          WHERE c.user_id = ?1
          ORDER BY c.updated_at DESC, k.name",
    )?;
    let rows = st.query_map([user_id], |r| {
        Ok(Consent {
            client_id: r.get(0)?,
            client_name: r.get(1)?,
            scopes: split_scope(&r.get::<_, String>(2)?),
            granted_at: r.get(3)?,
            updated_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Withdraws `user_id`'s consent to `client_id`: the row goes, and with it
/// the app's provider sessions of that person and their unused codes
/// (`sessions::revoke_provider_grant`). False when there was no consent.
/// In the caller's transaction: `cx.write(|tx| withdraw(tx, ...))`.
pub fn withdraw(tx: &Connection, user_id: &str, client_id: &str, now: i64) -> Result<bool, Error> {
    let gone = tx
        .prepare_cached("DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2")?
        .execute(params![user_id, client_id])?
        == 1;
    if gone {
        crate::sessions::revoke_provider_grant(tx, user_id, client_id, "consent withdrawn", now)?;
    }
    Ok(gone)
}

/// What a scope lets the app do, in words for the consent page.
pub fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are: an identifier for your account",
        "profile" => "See your name and username",
        "email" => "See your email address and whether it is verified",
        "groups" => "See the groups (tenants) you belong to and your roles in them",
        "offline_access" => "Stay connected to your account while you are away",
        _ => "Use a permission this server does not describe",
    }
}

/// The authorization request's parameters as the consent form carries
/// them: form-encoded, in their order.
pub fn carry(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parameters back from `carry`'s text.
pub fn uncarry(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// The seal of a carried request, for this browser session: HMAC-SHA256
/// under a key derived for the consent form alone, over the session's id
/// hash and the request text, base64url.
pub fn seal(master: &MasterKey, session: &BrowserSession, request: &str) -> String {
    let mut data = Vec::with_capacity(session.id_hash.len() + 1 + request.len());
    data.extend_from_slice(session.id_hash.as_bytes());
    data.push(0);
    data.extend_from_slice(request.as_bytes());
    b64url(&hmac_sha256(&master.derive("oidc consent form"), &data))
}

/// True when `given` is `request`'s seal for this session (constant time).
pub fn sealed(master: &MasterKey, session: &BrowserSession, request: &str, given: &str) -> bool {
    ct_eq(seal(master, session, request).as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id_hash: &str) -> BrowserSession {
        BrowserSession {
            id_hash: id_hash.into(),
            user_id: "u".into(),
            amr: vec!["pwd".into()],
            auth_time: 1,
            created_at: 1,
            last_seen_at: 1,
        }
    }

    #[test]
    fn a_grant_covers_the_same_or_fewer_scopes_only() {
        assert!(covers("openid email", "email openid"));
        assert!(covers("openid email profile", "openid"));
        assert!(!covers("openid", "openid email"));
        assert!(!covers("", "openid"));
    }

    #[test]
    fn a_carried_request_comes_back_the_same() {
        let p = vec![
            ("client_id".to_string(), "abc".to_string()),
            ("state".to_string(), "a&b=c d+é".to_string()),
            (
                "redirect_uri".to_string(),
                "https://a.example/cb?x=1".into(),
            ),
        ];
        assert_eq!(uncarry(&carry(&p)), p);
    }

    #[test]
    fn a_seal_is_bound_to_the_request_and_the_session() {
        let m = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let a = session("aaaa");
        let t = seal(&m, &a, "client_id=x&scope=openid");
        assert!(sealed(&m, &a, "client_id=x&scope=openid", &t));
        assert!(!sealed(&m, &a, "client_id=x&scope=openid%20email", &t));
        assert!(!sealed(
            &m,
            &session("bbbb"),
            "client_id=x&scope=openid",
            &t
        ));
        assert!(!sealed(&m, &a, "client_id=x&scope=openid", ""));
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(!sealed(&other, &a, "client_id=x&scope=openid", &t));
    }

    #[test]
    fn grants_widen_to_the_union_and_withdrawal_removes_them() {
        use crate::accounts::{self, NewUser};
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("t.db")).unwrap();
        let (user, client) = crate::db::immediate(&mut conn, |tx| {
            let new = NewUser {
                email: Some("ann@example.com".into()),
                role: "user".into(),
                ..NewUser::default()
            };
            let u = accounts::create_user(tx, &new, 1000)?;
            let (c, _) = accounts::create_client(
                tx,
                "grafana",
                &["https://g.example/cb".to_string()],
                None,
                false,
                accounts::Ttls::default(),
                1000,
            )?;
            Ok((u.id, c.client_id))
        })
        .unwrap();
        grant(&conn, &user, &client, "openid email", 1000).unwrap();
        grant(&conn, &user, &client, "openid", 1100).unwrap();
        let l = list(&conn, &user).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].scopes, vec!["openid", "email"]);
        assert_eq!((l[0].granted_at, l[0].updated_at), (1000, 1000));
        grant(&conn, &user, &client, "profile openid", 1200).unwrap();
        let l = list(&conn, &user).unwrap();
        assert_eq!(l[0].scopes, vec!["openid", "email", "profile"]);
        assert_eq!(l[0].client_name, "grafana");
        assert_eq!(l[0].updated_at, 1200);
        assert!(withdraw(&conn, &user, &client, 1300).unwrap());
        assert!(!withdraw(&conn, &user, &client, 1300).unwrap());
        assert!(list(&conn, &user).unwrap().is_empty());
        assert_eq!(granted(&conn, &user, &client).unwrap(), None);
    }
}
