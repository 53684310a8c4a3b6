//! A small token server for the registry's `auth: token` mode: it checks a fixed user and
//! password and signs RS256 JWTs granting the requested scopes, with `openssl` and a key
//! generated per test. It records every scope asked for.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::tool;

/// (user or "anonymous", scopes) per token request.
pub type Requests = Arc<Mutex<Vec<(String, Vec<String>)>>>;

pub struct TokenServer {
    pub realm: String,
    pub cert: PathBuf,
    pub requests: Requests,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

impl TokenServer {
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let st = Command::new(tool("openssl"))
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=teu-test-token-issuer"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let der = Command::new(tool("openssl"))
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = requests.clone();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let user = user.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).is_err() {
                    continue;
                }
                let mut auth = None;
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                let target = first.split(' ').nth(1).unwrap_or("").to_string();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let scopes: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(percent_decode)
                    .collect();
                let who = match &auth {
                    None => Some("anonymous".to_string()),
                    Some(a) if *a == expected => Some(user.clone()),
                    Some(_) => None,
                };
                reqs.lock().unwrap().push((
                    who.clone().unwrap_or_else(|| "refused".into()),
                    scopes.clone(),
                ));
                let (status, body) = match who {
                    None => (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.to_string(),
                    ),
                    Some(who) => {
                        // Anonymous users get a token with no access: the registry refuses them.
                        let access: Vec<serde_json::Value> = if who == "anonymous" {
                            vec![]
                        } else {
                            scopes
                                .iter()
                                .filter_map(|s| {
                                    let mut p = s.split(':');
                                    let (t, name, actions) = (p.next()?, p.next()?, p.next()?);
                                    Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                                })
                                .collect()
                        };
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let header =
                            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                        let claims = serde_json::json!({
                            "iss": "teu-test-issuer", "sub": who, "aud": "teu-test-registry",
                            "exp": now + 300, "nbf": now - 10, "iat": now,
                            "jti": format!("{now}-{}", reqs.lock().unwrap().len()), "access": access,
                        });
                        let signing = format!(
                            "{}.{}",
                            b64url(header.to_string().as_bytes()),
                            b64url(claims.to_string().as_bytes())
                        );
                        let mut child = Command::new(tool("openssl"))
                            .args(["dgst", "-sha256", "-sign"])
                            .arg(&key)
                            .stdin(std::process::Stdio::piped())
                            .stdout(std::process::Stdio::piped())
                            .spawn()
                            .unwrap();
                        child
                            .stdin
                            .take()
                            .unwrap()
                            .write_all(signing.as_bytes())
                            .unwrap();
                        let sig = child.wait_with_output().unwrap().stdout;
                        let jwt = format!("{signing}.{}", b64url(&sig));
                        (
                            "200 OK",
                            serde_json::json!({"token": jwt, "expires_in": 300}).to_string(),
                        )
                    }
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            realm,
            cert,
            requests,
        }
    }
}
