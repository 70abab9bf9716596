//! The account page: what a signed-in person manages themselves.

use super::*;

/// The account page's routes.
pub fn routes() -> Vec<Route> {
    vec![Route::new("GET", "/account", account)]
}

fn account(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s)) = signed_in_as(cx, req)? else {
            return Ok(see_other("/signin?return_to=%2Faccount"));
        };
        let user = crate::accounts::get_user(&cx.conn, &s.user_id)?
            .ok_or_else(|| Error::Internal("session of a missing user".into()))?;
        let methods = if s.amr.iter().any(|a| a == "otp" || a == "recovery") {
            "Password and a second factor"
        } else {
            "Password"
        };
        let mut page = Page::new(product(cx), "Your account")
            .set("csrf", session::csrf_token(&cx.app.master, &value))
            .set("who", user.display_name())
            .set("methods", methods);
        if let Some(e) = &user.email {
            page = page.set("email", e.as_str());
        }
        Ok(html(200, page.render("account.html")?))
    })
}

/// The account page's operations.
pub fn openapi() -> Vec<Op> {
    vec![
        page_op("GET", "/account", "The signed-in user's account page")
            .empty(303, "To /signin when not signed in"),
    ]
}
