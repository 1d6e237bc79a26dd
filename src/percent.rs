//! Percent-encoding, in one place, with the `percent-encoding` crate: the encode sets the
//! service needs and the two ways it decodes.
//!
//! ```text
//! UNRESERVED    query and form values, SigV4's canonical query: all but A-Z a-z 0-9 - _ . ~
//! PATH_SEGMENT  an ARM URL path segment: UNRESERVED, and ( ) kept (resource group names)
//! NODE_FILE     a node_file value: controls, space, % = # and non-ASCII
//! ```

use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};

/// RFC 3986's unreserved characters stay; every other byte becomes `%XX`.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A URL path segment: [`UNRESERVED`], with `(` and `)` kept.
pub const PATH_SEGMENT: &AsciiSet = &UNRESERVED.remove(b'(').remove(b')');

/// A `node_file` value: `key=value` pairs split on spaces and `=`, `#` starts a comment.
pub const NODE_FILE: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'=').add(b'#');

/// `value` with every byte in `set` (and every non-ASCII byte) as `%XX`.
pub fn encode(value: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(value, set).to_string()
}

/// `%XX` back to bytes; `None` unless the result is UTF-8. A `%` not followed by two hex
/// digits stays as it is.
pub fn decode(value: &str) -> Option<String> {
    percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// As Python's `urllib.parse.unquote`: `%XX` becomes the byte, anything else stays, bytes that
/// are not UTF-8 become U+FFFD.
pub fn decode_lossy(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_keep_what_they_should() {
        assert_eq!(encode("a b/c~d_e.f-g", UNRESERVED), "a%20b%2Fc~d_e.f-g");
        assert_eq!(encode("2001:db8::/64", UNRESERVED), "2001%3Adb8%3A%3A%2F64");
        assert_eq!(encode("a b~c*", UNRESERVED), "a%20b~c%2A");
        assert_eq!(encode("rg(1).x y", PATH_SEGMENT), "rg(1).x%20y");
        assert_eq!(encode("Sü+=", UNRESERVED), "S%C3%BC%2B%3D");
        assert_eq!(encode("a=b%c#d e/f", NODE_FILE), "a%3Db%25c%23d%20e/f");
    }

    #[test]
    fn decoding_round_trips_and_is_lenient_where_python_was() {
        for set in [UNRESERVED, PATH_SEGMENT, NODE_FILE] {
            let v = "a=b%c#d ü~(x)";
            assert_eq!(decode(&encode(v, set)).as_deref(), Some(v));
        }
        assert_eq!(decode_lossy("Super%2BSecret%2F123%3D"), "Super+Secret/123=");
        assert_eq!(decode_lossy("50%-off%zz"), "50%-off%zz");
        assert_eq!(decode("%FF"), None);
    }
}
