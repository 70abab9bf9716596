//! Building the RFC 5322 message the mail command reads on its stdin.
//!
//! Written by hand, on purpose: the parts are few and exactly specified
//! (RFC 5322 headers and date, RFC 2045 quoted-printable, RFC 2046
//! multipart/alternative, RFC 2047 encoded-words), and owning them lets us
//! state the guarantees below; a test parses every message back with an
//! independent parser (mail-parser, a dev-dependency).
//!
//! Guarantees of `build`:
//! * The message is 7-bit ASCII with CRLF line ends and no line longer
//!   than 78 characters (RFC 5322's 998 is the hard limit; 78 its advice).
//! * A header value cannot start another header: values are refused if
//!   they hold a CR or LF (`mail::queue` refuses them earlier still), and
//!   non-ASCII text goes into encoded-words, folded with CRLF + space.
//! * Bodies are quoted-printable. The boundary starts with `=_`, which a
//!   quoted-printable body can never contain (it writes `=` as `=3D`).
//!   A line starting with `.` is written `=2E...`, so a `sendmail` run
//!   without `-i` never takes it for the end of the message.
//! * The same row gives the same message on every try: the Message-ID is
//!   made from the row id and the Date is the time it was queued.

use base64::Engine as _;

use crate::error::Error;

/// Everything one message is made of.
#[derive(Clone, Copy)]
pub struct Envelope<'a> {
    /// `[mail] from`: `addr@host` or `Display Name <addr@host>`.
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    /// The Date header, unix seconds (when the mail was queued).
    pub date: i64,
    /// The Message-ID without its angle brackets (`message_id`).
    pub message_id: &'a str,
}

/// The Message-ID of an outbox row: the row id at the sender's domain
/// (`localhost` when the sender has none).
pub fn message_id(row_id: &str, from: &str) -> String {
    let addr = split_address(from).1;
    let domain = addr
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_graphic() && b != b'>'))
        .unwrap_or("localhost");
    format!("{row_id}@{domain}")
}

/// The whole message, ready for the command's stdin.
pub fn build(e: &Envelope) -> Result<String, Error> {
    for (name, v) in [
        ("from", e.from),
        ("to", e.to),
        ("subject", e.subject),
        ("message id", e.message_id),
    ] {
        if v.contains(['\r', '\n']) {
            return Err(Error::Internal(format!(
                "mail {name} holds a line break; refusing to build the message"
            )));
        }
    }
    // The recipient is one plain mailbox, nothing a `sendmail -t` could
    // read as a list or a second recipient (a row queued before addresses
    // were checked this strictly is refused here, not sent).
    if !crate::accounts::is_mailbox(e.to) {
        return Err(Error::Internal(
            "mail recipient is not one plain address; refusing to build the message".into(),
        ));
    }
    let mut m = String::with_capacity(e.text.len() * 2 + 1024);
    header(&mut m, "From", &address(e.from));
    header(&mut m, "To", &address(e.to));
    header(&mut m, "Subject", &encode_text(e.subject, "Subject".len()));
    header(&mut m, "Date", &rfc5322_date(e.date));
    header(&mut m, "Message-ID", &format!("<{}>", e.message_id));
    header(&mut m, "MIME-Version", "1.0");
    // RFC 3834: an automatic message; vacation responders stay quiet.
    header(&mut m, "Auto-Submitted", "auto-generated");
    match e.html {
        None => {
            header(&mut m, "Content-Type", "text/plain; charset=utf-8");
            header(&mut m, "Content-Transfer-Encoding", "quoted-printable");
            m.push_str("\r\n");
            m.push_str(&quoted_printable(e.text));
        }
        Some(html) => {
            let boundary = format!("=_{}", boundary_of(e.message_id));
            header(
                &mut m,
                "Content-Type",
                &format!("multipart/alternative;\r\n boundary=\"{boundary}\""),
            );
            m.push_str("\r\nThis is a multi-part message in MIME format.\r\n");
            for (kind, body) in [("plain", e.text), ("html", html)] {
                m.push_str(&format!("\r\n--{boundary}\r\n"));
                m.push_str(&format!(
                    "Content-Type: text/{kind}; charset=utf-8\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                ));
                m.push_str(&quoted_printable(body));
            }
            m.push_str(&format!("\r\n--{boundary}--\r\n"));
        }
    }
    Ok(m)
}

fn header(m: &mut String, name: &str, value: &str) {
    m.push_str(name);
    m.push_str(": ");
    m.push_str(value);
    m.push_str("\r\n");
}

/// A boundary token from the message id: stable, and only characters a
/// boundary may hold (RFC 2046 `bchars` minus space).
fn boundary_of(message_id: &str) -> String {
    let t: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    if t.is_empty() {
        "hallpass".into()
    } else {
        t
    }
}

/// `Name <addr>` into (name, addr); a bare address has no name.
fn split_address(s: &str) -> (Option<&str>, &str) {
    let s = s.trim();
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => {
            let name = s[..open].trim().trim_matches('"').trim();
            let addr = &s[open + 1..s.len() - 1];
            ((!name.is_empty()).then_some(name), addr.trim())
        }
        _ => (None, s),
    }
}

/// An address header value: the display name as an atom sequence, a
/// quoted string, or encoded-words, whichever it needs.
fn address(s: &str) -> String {
    let (name, addr) = split_address(s);
    let Some(name) = name else {
        return addr.to_string();
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    let shown = if name.chars().all(atext) && !name.contains("=?") {
        name.to_string()
    } else if name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) && !name.contains("=?") {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        // Folded before the address, so no line grows past 78.
        return format!("{}\r\n <{addr}>", encoded_words(name));
    };
    format!("{shown} <{addr}>")
}

/// Unstructured header text (RFC 5322 §3.2.5): as it is when it is
/// printable ASCII, short and cannot be mistaken for an encoded-word,
/// else RFC 2047 encoded-words. `used` is the width of "Name: " before it.
fn encode_text(s: &str, used: usize) -> String {
    let plain = s.bytes().all(|b| (0x20..0x7f).contains(&b)) && !s.contains("=?");
    if plain && s.len() + used + 2 <= 78 {
        return s.to_string();
    }
    encoded_words(s)
}

/// `=?UTF-8?B?...?=` words of at most 75 characters (RFC 2047 §2), split
/// on character boundaries (§5: a word holds whole characters) and folded
/// onto lines of their own.
fn encoded_words(s: &str) -> String {
    // 42 bytes -> 56 base64 characters + 12 of framing = 68, so that even
    // "Subject: " and the first word fit in 78.
    const CHUNK: usize = 42;
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let next = i + c.len_utf8();
        if next - start > CHUNK {
            words.push(&s[start..end]);
            start = end;
        }
        end = next;
    }
    if start < s.len() || words.is_empty() {
        words.push(&s[start..]);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 2045 §6.7 quoted-printable of `text`, its line breaks (LF or CRLF)
/// written as CRLF, lines at most 76 characters (soft breaks `=`).
pub fn quoted_printable(text: &str) -> String {
    const MAX: usize = 76;
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 16);
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = match b {
                b'=' => false,
                // Trailing white space would be stripped in transit.
                b' ' | b'\t' => !last,
                b'.' => i != 0,
                33..=126 => true,
                _ => false,
            };
            let piece_len = if literal { 1 } else { 3 };
            // Room for the piece plus a soft break's `=`, unless it ends
            // the line.
            let limit = if last { MAX } else { MAX - 1 };
            if width + piece_len > limit {
                out.push_str("=\r\n");
                width = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            width += piece_len;
        }
        if n + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// `Tue, 01 Jul 2025 12:00:00 +0000` (RFC 5322 §3.3), in UTC.
pub fn rfc5322_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // clock::iso8601 is the one calendar conversion: YYYY-MM-DDTHH:MM:SS.
    let iso = crate::clock::iso8601(secs);
    let month: usize = iso.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let weekday = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{weekday}, {} {} {} {} +0000",
        iso.get(8..10).unwrap_or("01"),
        MONTHS[month.clamp(1, 12) - 1],
        iso.get(0..4).unwrap_or("1970"),
        iso.get(11..19).unwrap_or("00:00:00")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{HeaderValue, MessageParser};

    fn sample<'a>(subject: &'a str, text: &'a str, html: Option<&'a str>) -> Envelope<'a> {
        Envelope {
            from: "Zoë's Auth <auth@example.com>",
            to: "ann@example.org",
            subject,
            text,
            html,
            date: 1_751_371_200, // Tue, 01 Jul 2025 12:00:00 +0000
            message_id: "0b1c2d3e-4f50-4617-8899-aabbccddeeff@example.com",
        }
    }

    fn assert_wire_safe(m: &str) {
        assert!(m.is_ascii(), "7-bit only");
        assert!(m.ends_with("\r\n"));
        for line in m.split("\r\n") {
            assert!(
                !line.contains('\n') && !line.contains('\r'),
                "bare line end"
            );
            assert!(line.len() <= 78, "line of {}: {line:?}", line.len());
        }
    }

    #[test]
    fn a_message_parses_back_with_its_headers_and_both_parts() {
        let link = "https://auth.example/reset?token=abc=def&x=1";
        let text = format!(
            "Hello Zoë,\n\nOpen this link:\n\n{link}\n\n. a line starting with a dot\ntrailing space \n{}\n",
            "x".repeat(200)
        );
        let html = format!("<p>Hello Zoë,</p>\n<p><a href=\"{link}\">Reset</a></p>\n");
        let subject = "Réinitialisez votre mot de passe – un sujet assez long pour être replié sur plusieurs lignes";
        let m = build(&sample(subject, &text, Some(&html))).unwrap();
        assert_wire_safe(&m);
        let p = MessageParser::default().parse(m.as_bytes()).unwrap();
        assert_eq!(p.subject(), Some(subject));
        let from = p.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Zoë's Auth"));
        assert_eq!(from.address(), Some("auth@example.com"));
        assert_eq!(
            p.to().unwrap().first().unwrap().address(),
            Some("ann@example.org")
        );
        assert_eq!(
            p.message_id(),
            Some("0b1c2d3e-4f50-4617-8899-aabbccddeeff@example.com")
        );
        assert_eq!(p.date().unwrap().to_timestamp(), 1_751_371_200);
        assert_eq!(p.body_text(0).unwrap().replace("\r\n", "\n"), text);
        assert_eq!(p.body_html(0).unwrap().replace("\r\n", "\n"), html);
        assert!(m.contains("Content-Type: multipart/alternative"));
        assert!(m.contains("Date: Tue, 01 Jul 2025 12:00:00 +0000\r\n"));
        assert!(
            matches!(p.header("MIME-Version"), Some(HeaderValue::Text(v)) if v == "1.0"),
            "{:?}",
            p.header("MIME-Version")
        );
    }

    #[test]
    fn a_text_only_message_is_a_single_part() {
        let m = build(&sample("Hi", "just text\n", None)).unwrap();
        assert_wire_safe(&m);
        let p = MessageParser::default().parse(m.as_bytes()).unwrap();
        assert_eq!(p.body_text(0).unwrap().replace("\r\n", "\n"), "just text\n");
        assert!(!m.contains("multipart"));
    }

    #[test]
    fn a_line_break_in_a_header_value_is_refused() {
        for bad in ["ann@example.org\r\nBcc: x@evil", "ann@example.org\nX: y"] {
            let mut e = sample("Hi", "t", None);
            e.to = bad;
            assert!(build(&e).is_err());
        }
        let mut e = sample("Hi", "t", None);
        e.subject = "Hi\r\nBcc: x@evil";
        assert!(build(&e).is_err());
    }

    #[test]
    fn header_text_that_looks_encoded_is_encoded_itself() {
        let m = build(&sample("=?UTF-8?B?SGk=?=", "t", None)).unwrap();
        let p = MessageParser::default().parse(m.as_bytes()).unwrap();
        assert_eq!(p.subject(), Some("=?UTF-8?B?SGk=?="));
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_round_trips_odd_bytes() {
        let text = "€".repeat(100) + "\n" + &"=".repeat(100) + "\n\t\n";
        let qp = quoted_printable(&text);
        for line in qp.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
        }
        let m = build(&sample("q", &text, None)).unwrap();
        let p = MessageParser::default().parse(m.as_bytes()).unwrap();
        assert_eq!(p.body_text(0).unwrap().replace("\r\n", "\n"), text);
    }

    #[test]
    fn the_message_id_takes_the_senders_domain() {
        assert_eq!(
            message_id("r1", "hallpass <hallpass@auth.example>"),
            "r1@auth.example"
        );
        assert_eq!(message_id("r1", "nobody"), "r1@localhost");
    }

    #[test]
    fn dates_are_rfc5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_709_251_199),
            "Thu, 29 Feb 2024 23:59:59 +0000"
        );
    }
}
