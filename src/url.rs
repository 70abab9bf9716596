//! Percent-encoding (RFC 3986), shared by the HTTP layer and the core
//! (otpauth URIs, links in mail).

/// Percent-decodes; `plus` turns '+' into ' ' (forms). Invalid UTF-8 is
/// replaced, never a panic.
pub fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hexv = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hexv {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The origin (`scheme://host[:port]`, lower-cased) of an absolute http or
/// https URL; None for anything else, including an authority with
/// userinfo (`https://good@evil.example`) or a backslash.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty()
        || authority.contains(['@', '\\'])
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// True when `target` may be sent back to a browser as a place to go: a
/// path on this server (`/x`, not `//x` or `/\x`), or an absolute URL with
/// one of the `allowed` origins. Anything else would make a genuine mail
/// or redirect of ours point wherever the caller chose (an open redirect).
pub fn is_allowed_target(target: &str, allowed: &[String]) -> bool {
    if target.starts_with('/') {
        return !target.starts_with("//")
            && !target.starts_with("/\\")
            && !target.chars().any(|c| c.is_control());
    }
    origin(target).is_some_and(|o| allowed.iter().any(|a| origin(a).as_deref() == Some(&o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_and_allowed_origins_are_targets() {
        let allowed = [
            "https://app.example/cb".to_string(),
            "http://localhost:3000".to_string(),
        ];
        for ok in [
            "/after",
            "/a?b=c",
            "https://app.example/done?x=1",
            "HTTPS://APP.example",
            "http://localhost:3000/x",
        ] {
            assert!(is_allowed_target(ok, &allowed), "{ok}");
        }
        for bad in [
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/steal",
            "https://app.example@evil.example/",
            "https://app.example.evil.example/",
            "http://app.example/",
            "http://localhost:3001/",
            "javascript:alert(1)",
            "app.example/x",
            "",
        ] {
            assert!(!is_allowed_target(bad, &allowed), "{bad}");
        }
    }
}
