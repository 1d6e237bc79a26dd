//! Secrets (keys, tokens, signed assertions) and the one function that keeps them out of text.
//!
//! A secret reaches a message only when a server echoes a request back in an error (a login
//! endpoint quoting the form it was sent, a proxy's error page): by then it is no longer as it
//! was typed but percent-encoded (`Super%2BSecret%2F123%3D`), form-encoded (`+` for a space),
//! JSON-escaped (`\/`, `\u002b`), or twice percent-encoded. [`mask`] finds it in any of these
//! forms, mixed, and every provider passes every message built from an answer through it.
//!
//! Only a secret of at least [`MIN_MASKED_CHARS`] characters is masked: a shorter one cannot be
//! told from text (`AWS_SECRET_ACCESS_KEY=y` once turned `Temporary failure` into
//! `Temporar******** failure`), and no cloud issues one that short — an AWS secret access key is
//! 40 characters, a session token hundreds, an Azure client secret 34–40, an access token or a
//! signed JWT assertion hundreds to thousands. A shorter value is left as the message has it,
//! and the log says so once.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a masked secret is replaced with.
pub const MASK: &str = "********";

/// The shortest secret [`mask`] masks. Eight characters: far below every real cloud secret
/// (the shortest, an Azure client secret, has 34), and long enough that a value found in a
/// message is the secret, not a piece of a word.
pub const MIN_MASKED_CHARS: usize = 8;

/// Whether the note about a short secret was logged by this process.
static SHORT_NOTED: AtomicBool = AtomicBool::new(false);

/// A secret string (app key, bearer token, session token): its `Debug` and `Display` show only
/// [`MASK`]; the value is read with [`Secret::expose`] where it goes on the wire.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// `text` with every occurrence of each secret, in any encoding a server may echo it in,
/// replaced by [`MASK`]. Secrets shorter than [`MIN_MASKED_CHARS`] are left alone (noted once
/// in the log): masking them would rewrite the message's own words.
pub fn mask(text: &str, secrets: &[&str]) -> String {
    let (secrets, short): (Vec<&str>, Vec<&str>) = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .partition(|s| s.chars().count() >= MIN_MASKED_CHARS);
    if let Some(shortest) = short.iter().map(|s| s.chars().count()).min() {
        if !SHORT_NOTED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "a secret of {shortest} character(s) is not masked in messages: fewer than \
                 {MIN_MASKED_CHARS} cannot be told from text (no cloud issues one that short; \
                 check the key that was set)"
            );
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let end = secrets
            .iter()
            .filter_map(|s| match_at(bytes, i, s.as_bytes()))
            .max();
        match end {
            Some(end) => {
                out.extend_from_slice(MASK.as_bytes());
                i = end;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    // Only whole UTF-8 sequences were replaced (a match ends where a secret's bytes end).
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `secret` ends if it starts at `text[at..]` in some encoding, else `None`.
fn match_at(text: &[u8], at: usize, secret: &[u8]) -> Option<usize> {
    let Some((&want, rest)) = secret.split_first() else {
        return Some(at);
    };
    encodings(text, at, want)
        .into_iter()
        .flatten()
        .find_map(|next| match_at(text, next, rest))
}

/// The positions after each way `byte` may be written at `text[at..]`.
fn encodings(text: &[u8], at: usize, byte: u8) -> [Option<usize>; 5] {
    let get = |i: usize| text.get(at + i).copied();
    let hex_at = |i: usize| {
        let pair = text.get(at + i..at + i + 2)?;
        u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()
    };
    let literal = (get(0) == Some(byte)).then_some(at + 1);
    let form_space = (byte == b' ' && get(0) == Some(b'+')).then_some(at + 1);
    let percent = match (get(0), get(1), get(2)) {
        (Some(b'%'), Some(b'2'), Some(b'5')) if hex_at(3) == Some(byte) => Some(at + 5),
        (Some(b'%'), ..) if hex_at(1) == Some(byte) => Some(at + 3),
        _ => None,
    };
    let json_char = (get(0) == Some(b'\\') && get(1) == Some(byte) && b"/\\\"".contains(&byte))
        .then_some(at + 2);
    let json_unicode = (get(0) == Some(b'\\')
        && get(1) == Some(b'u')
        && hex_at(2) == Some(0)
        && hex_at(4) == Some(byte))
    .then_some(at + 6);
    [literal, form_space, percent, json_char, json_unicode]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Super+Secret/123=a%b&c d";

    #[test]
    fn every_echoed_form_of_a_key_is_masked() {
        let forms = [
            KEY.to_string(),
            // RFC 3986, upper and lower case hex
            "Super%2BSecret%2F123%3Da%25b%26c%20d".to_string(),
            "Super%2bSecret%2f123%3da%25b%26c%20d".to_string(),
            // application/x-www-form-urlencoded
            "Super%2BSecret%2F123%3Da%25b%26c+d".to_string(),
            // JSON, with and without the optional `\/`, and as \u escapes
            serde_json::to_string(KEY)
                .expect("json")
                .trim_matches('"')
                .to_string(),
            "Super+Secret\\/123=a%b&c d".to_string(),
            "Super\\u002bSecret\\u002f123\\u003da%b\\u0026c d".to_string(),
            // percent-encoded twice
            "Super%252BSecret%252F123%253Da%2525b%2526c%2520d".to_string(),
        ];
        for form in forms {
            let text = format!("invalid_client: body was client_secret={form}&resource=x");
            let masked = mask(&text, &["", KEY]);
            assert_eq!(
                masked, "invalid_client: body was client_secret=********&resource=x",
                "{form}"
            );
        }
    }

    #[test]
    fn other_text_and_near_misses_stay() {
        let text = "Super+Secret/12 is not the key; Supér";
        assert_eq!(mask(text, &[KEY]), text);
        assert_eq!(
            mask("a token-01 b token-01", &["token-01", "other-secret"]),
            "a ******** b ********"
        );
        assert_eq!(mask("nothing", &[]), "nothing");
    }

    #[test]
    fn a_secret_too_short_to_tell_from_text_never_garbles_a_message() {
        let text = "Temporary failure in name resolution; /ca/empty.pem";
        for short in ["y", "e", "ty", "empty", "failure"] {
            assert_eq!(mask(text, &[short]), text, "{short}");
        }
        // Eight characters and more are masked wherever they appear.
        assert_eq!(mask("key=abcd1234&x", &["abcd1234", "y"]), "key=********&x");
        assert_eq!(MIN_MASKED_CHARS, 8);
    }

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let secret = Secret::new(KEY);
        assert_eq!(format!("{secret:?} {secret}"), "Secret(********) ********");
        assert_eq!(secret.expose(), KEY);
    }
}
