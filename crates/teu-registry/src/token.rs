//! `WWW-Authenticate` challenges and the tokens they lead to.

use std::time::{Duration, Instant};

use crate::auth::Secret;

/// How a registry wants to be authenticated, learnt from its first 401.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parse the first scheme of a `WWW-Authenticate` header.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
            })
        }
        _ => None,
    }
}

/// `k="v", k2=v2` with quoted strings that may hold commas and escaped quotes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub struct Token {
    pub secret: Secret,
    pub expires: Instant,
}

impl Token {
    /// Tokens are dropped a little before they expire so a request in flight does not
    /// carry a dead one; the spec's default lifetime is 60 s.
    pub fn new(secret: Secret, expires_in: Option<u64>) -> Token {
        let life = Duration::from_secs(expires_in.unwrap_or(60).max(1));
        let margin = (life / 10).min(Duration::from_secs(30));
        Token {
            secret,
            expires: Instant::now() + life - margin,
        }
    }
    pub fn fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

#[derive(serde::Deserialize)]
pub struct TokenReply {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A registry's `WWW-Authenticate` header is untrusted: anything parses or is
        /// refused, never a panic.
        #[test]
        fn challenges_never_panic(h in "\\PC{0,120}") {
            let _ = super::parse_challenge(&h);
        }

        #[test]
        fn bearer_challenges_keep_realm_and_service(
            realm in "https://[a-z]{1,10}\\.[a-z]{2,3}/[a-z]{0,8}",
            service in "[a-z0-9.:-]{1,20}",
            scheme in prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")],
        ) {
            let h = format!("{scheme} realm=\"{realm}\",service=\"{service}\",scope=\"repository:x:pull\"");
            match super::parse_challenge(&h) {
                Some(super::Challenge::Bearer { realm: r, service: s }) => {
                    prop_assert_eq!(r, realm);
                    prop_assert_eq!(s, Some(service));
                }
                other => prop_assert!(false, "{h}: {other:?}"),
            }
        }
    }
}
