//! The OpenID provider's pages (issue 13): the consent page that
//! `/oauth2/authorize` shows a person for a consent client, its form
//! (`POST /consent`), and the error page of an authorization request that
//! cannot go back to the app (unknown client, redirect URI missing or not
//! registered: RFC 6749 §4.1.2.1 forbids the redirect).
//!
//! The consent form's `csrf` is bound to the browser session (like
//! sign-out's) and checked first. The authorization request rides in
//! `request`, sealed for this session in `seal` (oidc/consent.rs);
//! `authorize::decide` refuses a changed one and checks the rest again.

use std::collections::BTreeMap;

use minijinja::Value;

use super::*;
use crate::oidc::authorize::{self, ConsentAsk, Outcome};
use crate::oidc::consent;

/// The consent form's route (the page itself is `/oauth2/authorize`'s).
pub fn routes() -> Vec<Route> {
    vec![Route::new("POST", "/consent", consent_post)]
}

/// The consent page for `ask`, shown in answer to `/oauth2/authorize`
/// (api/oidc.rs): 200, with the pages' headers. An error becomes the
/// error page.
pub fn page(cx: &Ctx, req: &Request, ask: &ConsentAsk) -> Response {
    consent_page(cx, req, ask).unwrap_or_else(|e| error_page(cx, &e))
}

fn consent_page(cx: &Ctx, req: &Request, ask: &ConsentAsk) -> Result<Response, Error> {
    // authorize found this session a moment ago; gone now, the form
    // could not be posted, so the page says the form expired.
    let (value, s) = signed_in_as(cx, req)?.ok_or_else(csrf_refused)?;
    let scopes: Vec<Value> = ask
        .scopes
        .iter()
        .map(|name| {
            let mut m = BTreeMap::new();
            m.insert("name".to_string(), Value::from(name.as_str()));
            m.insert("words".to_string(), Value::from(consent::describe(name)));
            Value::from(m)
        })
        .collect();
    let body = Page::new(product(cx), &format!("Allow {}?", ask.client_name))
        .set("app", ask.client_name.as_str())
        .set("who", who(cx, &s)?)
        .set("scopes", scopes)
        .set("csrf", session::csrf_token(&cx.app.master, &value))
        .set("request", ask.request.as_str())
        .set("seal", ask.seal.as_str())
        .render("consent.html")?;
    Ok(html(200, body))
}

fn consent_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let answer = (|| {
        let form = Form::read(req)?;
        let Some((value, s)) = signed_in_as(cx, req)? else {
            return Err(csrf_refused());
        };
        if !session::csrf_ok(&cx.app.master, Some(&value), form.get("csrf")) {
            return Err(csrf_refused());
        }
        let allow = match form.get("decision") {
            "allow" => true,
            "deny" => false,
            _ => return Err(Error::BadRequest("decision must be allow or deny".into())),
        };
        let outcome = authorize::decide(
            cx,
            form.get("request"),
            form.get("seal"),
            allow,
            &s,
            &peer(req),
        )?;
        Ok(match outcome {
            Outcome::Redirect(url) => see_other(&url),
            Outcome::SignIn(back) => {
                see_other(&format!("/signin?return_to={}", percent_encode(&back)))
            }
            // decide answers the page's form; it never asks again.
            Outcome::Consent(_) => {
                return Err(Error::Internal("decide asked for consent again".into()))
            }
        })
    })();
    Ok(answer.unwrap_or_else(|e| authorize_error(cx, &e)))
}

/// The answer to an authorization request (or consent form) that failed
/// before its redirect URI was known good: the error page, 400, in words
/// that say the app is misconfigured, with the detail for whoever runs
/// it (our own fixed text, never an echo of the request). Other errors
/// (an expired form, a fault of ours) get the usual error page.
pub fn authorize_error(cx: &Ctx, e: &Error) -> Response {
    match e {
        Error::Validation { message, .. } | Error::BadRequest(message) => {
            let text = format!(
                "The app that sent you here is misconfigured: {message}. Signing in to it \
                 cannot go on from here; tell whoever runs the app, who needs to fix its \
                 settings or its registration in {}.",
                product(cx).product
            );
            match Page::new(product(cx), "This app is misconfigured")
                .set("message", text)
                .render("error.html")
            {
                Ok(body) => html(400, body),
                Err(e) => error_page(cx, &e),
            }
        }
        other => error_page(cx, other),
    }
}

/// The consent form's operation.
pub fn openapi() -> Vec<Op> {
    vec![form_op(
        "/consent",
        "Allows or denies an app the scopes it asked for (the consent page's form)",
    )
    .json_text(400, "text/html")]
}
