//! The original Python package's `node_file`: one `str(dict)` literal per line, read once at
//! start and converted ([`super::NodeDb::load`] keeps the original as `node_file.orig`).
//!
//! ```text
//! {'index': '1', 'routeTableId': 'rtb-0a1b2c3d', 'region': 'us-east-1', 'mode': 'primary'}
//! ```

use super::build_node;
use crate::node::{Node, Provider};

/// Reads one line of the original package's `node_file`, e.g.
/// `{'index': '1', 'routeTableId': 'rtb-0a1b2c3d', 'region': 'us-east-1', 'mode': 'primary'}`.
pub(super) fn parse_python_line(line: &str) -> Result<Node, String> {
    let pairs = python_dict(line)?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let provider = match get("cloud") {
        Some("gcp") => Provider::Gcp,
        Some("azure" | "azusgov" | "azchina") => Provider::Azure,
        Some(other) => return Err(format!("unknown cloud {other:?}")),
        None => Provider::Aws,
    };
    build_node(pairs, Some(provider))
}

/// A Python dict literal of string keys to string (or None/number) values.
fn python_dict(line: &str) -> Result<Vec<(String, String)>, String> {
    let body = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or("not a {...} dict literal")?;
    let mut chars = body.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            break;
        }
        let key = python_value(&mut chars)?.ok_or("a key is None")?;
        skip_spaces(&mut chars);
        if chars.next() != Some(':') {
            return Err(format!("expected ':' after key {key:?}"));
        }
        skip_spaces(&mut chars);
        if let Some(value) = python_value(&mut chars)? {
            pairs.push((key, value));
        }
        skip_spaces(&mut chars);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("unexpected {c:?} in dict literal")),
        }
    }
    Ok(pairs)
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

/// A quoted string, a bare number, or `None` (→ `Ok(None)`).
fn python_value(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Option<String>, String> {
    match chars.peek().copied() {
        Some(q @ ('\'' | '"')) => {
            chars.next();
            let mut out = String::new();
            loop {
                match chars.next() {
                    Some('\\') => out.push(chars.next().ok_or("unterminated string")?),
                    Some(c) if c == q => return Ok(Some(out)),
                    Some(c) => out.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
        }
        Some(_) => {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == ':' || c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            match word.as_str() {
                "None" => Ok(None),
                w if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(word)),
                _ => Err(format!("unexpected {word:?} in dict literal")),
            }
        }
        None => Err("dict literal ends early".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Param;

    #[test]
    fn python_lines_import_per_cloud() {
        let aws = "{'index': '1', 'routeTableId': 'rtb-0a1b2c3d', 'region': 'us-east-1', 'eniId': 'eni-0a1b2c3d', 'route': '10.0.0.0/16', 'mode': 'primary'}";
        let node = parse_python_line(aws).expect("imports");
        assert_eq!(node.provider, Provider::Aws);
        assert_eq!(node.get(Param::EniId), Some("eni-0a1b2c3d"));
        let gcp = "{'index': '2', 'cloud': 'gcp', 'project': 'my-project', 'vpc': 'vpc-a', 'routeName': 'r-a', 'peerRouteName': 'r-b', 'nextHopIp': '10.0.0.2', 'hopPriority': '0', 'route': '10.1.0.0/16'}";
        let node = parse_python_line(gcp).expect("imports");
        assert_eq!(
            (node.provider, node.get(Param::HopPriority)),
            (Provider::Gcp, Some("0"))
        );
        let azure = "{'index': '3', 'cloud': 'azure', 'subscriptionId': 'abc-1', 'resourceGroup': 'rg', 'routeTableName': 'rt', 'nextHop': '10.0.0.4', 'appKey': None}";
        let node = parse_python_line(azure).expect("imports");
        assert_eq!(
            (node.provider, node.get(Param::AppKey)),
            (Provider::Azure, None)
        );
    }
}
