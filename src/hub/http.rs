//! The HTTP side of the hub client: requests with the token, redirects followed by hand (the
//! token goes to the hub's own origin only, never to a CDN), bounded retries with backoff on
//! 5xx, 429 and connection errors, and one clear line for every other failure.

use std::io::Read;
use std::time::Duration;

use crate::{Error, ErrorKind, Result};

/// Tries per request: the first and up to 4 retries, waiting 0.5, 1, 2, 4 s.
pub const MAX_TRIES: u32 = 5;
const MAX_REDIRECTS: usize = 10;

/// The wait before retry `try_index + 1`. Built for fuzzing (`--cfg fuzzing`, fuzz/run.sh) it
/// is zero: the `hub` fuzz target drives every retry path against a loopback server, and
/// seconds of sleep per input would leave it nothing else to do. The tries are still counted.
pub fn backoff(try_index: u32) -> Duration {
    if cfg!(fuzzing) {
        return Duration::ZERO;
    }
    Duration::from_millis(500 << try_index.min(4))
}

/// A failed request: worth another try (5xx, 429, connection) or not.
pub enum Failure {
    Transient(String),
    Fatal(Error),
    /// `416` to a `Range` request: the server cannot serve from that offset.
    RangeRefused,
}

impl Failure {
    pub fn into_error(self) -> Error {
        match self {
            Failure::Transient(m) => Error::io(m),
            Failure::Fatal(e) => e,
            Failure::RangeRefused => Error::io("the server refused the byte range"),
        }
    }
}

/// What a `HEAD .../resolve/...` answered, from the last response on the hub's side (a redirect
/// to another host carries the file's metadata itself).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// `X-Repo-Commit`.
    pub commit: Option<String>,
    /// `X-Linked-Etag`, else `ETag`, without quotes or `W/`.
    pub etag: Option<String>,
    /// `X-Linked-Size`, else `Content-Length` of a non-redirect answer.
    pub size: Option<u64>,
    /// Where the bytes are: the redirect target, or the URL itself.
    pub location: String,
    /// Whether `location` is still on the hub's origin (the token may go there).
    pub same_origin: bool,
}

/// An open response body and where in the file it starts (a `206` answer to `Range`).
pub struct Body {
    pub reader: Box<dyn Read + Send>,
    /// The offset of the first byte served: the asked one for a 206, 0 for a 200.
    pub start: u64,
    /// The total file size when the answer says it (`Content-Range: .../N` or Content-Length).
    pub total: Option<u64>,
}

pub struct Client {
    agent: ureq::Agent,
    token: Option<String>,
}

/// `scheme://host:port` of a URL (lowercase host, the scheme's default port made explicit).
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let port = match (has_port, scheme) {
        (true, _) => "",
        (false, "http") => ":80",
        (false, _) => ":443",
    };
    format!("{scheme}://{authority}{port}")
}

/// A `Location` header resolved against the URL that answered it (absolute, `//host/...` or
/// `/path`, the forms the hub and its CDNs use).
fn join(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(net) = location.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        // Relative to the base's directory.
        let path = &rest[authority.len()..];
        let path = path.split(['?', '#']).next().unwrap_or("");
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{scheme}://{authority}{dir}/{location}")
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// `W/"abc"` or `"abc"` -> `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim_start_matches("W/").trim_matches('"').to_string()
}

/// The one line for an HTTP error status of a request about `what` (`org/name/file@rev`).
pub fn status_error(status: u16, error_code: Option<&str>, what: &str) -> Error {
    let code = error_code.unwrap_or("");
    let message = match (status, code) {
        (401 | 403, "GatedRepo") if status == 401 => format!(
            "{what}: 401, the repository is gated: accept its terms on the hub, then set \
             HF_TOKEN to a token of that account"
        ),
        (401 | 403, "GatedRepo") => format!(
            "{what}: 403, the repository is gated and this token has no access to it (request \
             access on its page, or use a token of an account that has it)"
        ),
        (401, "RepoNotFound") | (404, "RepoNotFound") => format!(
            "{what}: {status}, repository not found (or private: set HF_TOKEN to a token that \
             can read it)"
        ),
        (401, _) => format!(
            "{what}: 401 unauthorized: the repository is private or gated and HF_TOKEN is \
             missing or invalid"
        ),
        (403, _) => format!("{what}: 403 forbidden: the token (HF_TOKEN) has no access"),
        (404, "RevisionNotFound") => format!("{what}: 404, no such revision"),
        (404, "EntryNotFound") => format!("{what}: 404, no such file in the repository"),
        (404, _) => format!("{what}: 404 not found"),
        (416, _) => format!("{what}: 416, the server refused the byte range"),
        _ => format!("{what}: HTTP {status}"),
    };
    let kind = match status {
        401 | 403 | 404 => ErrorKind::BadInput,
        _ => ErrorKind::Io,
    };
    Error::new(kind, message)
}

fn transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

impl Client {
    pub fn new(token: Option<String>) -> Client {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("bitnet-rs/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.into(),
            token,
        }
    }

    /// One request, no retry: a response below 300 or a redirect, or a failure.
    fn send(
        &self,
        method: &str,
        url: &str,
        auth: bool,
        range_from: u64,
        what: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept-Encoding", "identity");
        if auth {
            if let Some(token) = &self.token {
                req = req.header("Authorization", format!("Bearer {token}"));
            }
        }
        if range_from > 0 {
            req = req.header("Range", format!("bytes={range_from}-"));
        }
        let req = req
            .body(())
            .map_err(|e| Failure::Fatal(Error::bad_input(format!("{what}: bad URL {url}: {e}"))))?;
        let resp = self.agent.run(req).map_err(|e| match e {
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                Failure::Fatal(Error::bad_input(format!("{what}: bad URL {url}: {e}")))
            }
            e => Failure::Transient(format!("{what}: {url}: {e}")),
        })?;
        let status = resp.status().as_u16();
        if status < 400 {
            return Ok(resp);
        }
        if status == 416 && range_from > 0 {
            return Err(Failure::RangeRefused);
        }
        let error = status_error(status, header(&resp, "X-Error-Code").as_deref(), what);
        if transient_status(status) {
            Err(Failure::Transient(error.message))
        } else {
            Err(Failure::Fatal(error))
        }
    }

    /// `f` until it succeeds, fails for good, or has failed `MAX_TRIES` times in a row.
    pub fn retry<T>(&self, mut f: impl FnMut() -> Result<T, Failure>) -> Result<T> {
        let mut tries = 0;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::RangeRefused) => return Err(Failure::RangeRefused.into_error()),
                Err(Failure::Transient(m)) => {
                    tries += 1;
                    if tries >= MAX_TRIES {
                        return Err(Error::io(format!("{m} (gave up after {tries} tries)")));
                    }
                    std::thread::sleep(backoff(tries - 1));
                }
            }
        }
    }

    /// `HEAD url`, following redirects on the same origin and stopping at one to another host
    /// (whose answer carries the metadata), like huggingface_hub.
    pub fn resolve(&self, url: &str, what: &str) -> Result<Resolved> {
        self.retry(|| {
            let mut url = url.to_string();
            for _ in 0..MAX_REDIRECTS {
                let resp = self.send("HEAD", &url, true, 0, what)?;
                let redirect = resp.status().is_redirection();
                let location = header(&resp, "Location").map(|l| join(&url, &l));
                let commit = header(&resp, "X-Repo-Commit");
                let etag = header(&resp, "X-Linked-Etag")
                    .or_else(|| header(&resp, "ETag"))
                    .map(|e| normalize_etag(&e));
                let size = header(&resp, "X-Linked-Size")
                    .or_else(|| {
                        (!redirect)
                            .then(|| header(&resp, "Content-Length"))
                            .flatten()
                    })
                    .and_then(|s| s.parse().ok());
                match location {
                    Some(next) if redirect && origin(&next) == origin(&url) => url = next,
                    Some(next) if redirect => {
                        return Ok(Resolved {
                            commit,
                            etag,
                            size,
                            location: next,
                            same_origin: false,
                        })
                    }
                    _ if redirect => {
                        return Err(Failure::Fatal(Error::format(format!(
                            "{what}: a redirect without a Location header"
                        ))))
                    }
                    _ => {
                        return Ok(Resolved {
                            commit,
                            etag,
                            size,
                            location: url,
                            same_origin: true,
                        })
                    }
                }
            }
            Err(Failure::Fatal(Error::io(format!(
                "{what}: too many redirects"
            ))))
        })
    }

    /// `GET url` from byte `from` on (a `Range` request when `from > 0`), following redirects;
    /// the token goes along only while the URL stays on the first one's origin. One try:
    /// the caller retries, since it also resumes.
    pub fn get(&self, url: &str, auth: bool, from: u64, what: &str) -> Result<Body, Failure> {
        let first_origin = origin(url);
        let mut url = url.to_string();
        for _ in 0..MAX_REDIRECTS {
            let auth_here = auth && origin(&url) == first_origin;
            let resp = self.send("GET", &url, auth_here, from, what)?;
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                let Some(next) = header(&resp, "Location") else {
                    return Err(Failure::Fatal(Error::format(format!(
                        "{what}: a redirect without a Location header"
                    ))));
                };
                url = join(&url, &next);
                continue;
            }
            let (start, total) = if status == 206 {
                // Content-Range: bytes START-END/TOTAL
                let range = header(&resp, "Content-Range").unwrap_or_default();
                let spec = range.trim_start_matches("bytes").trim();
                let (span, total) = spec.split_once('/').unwrap_or((spec, "*"));
                let start = span.split('-').next().and_then(|s| s.trim().parse().ok());
                match start {
                    Some(s) => (s, total.trim().parse().ok()),
                    None => {
                        return Err(Failure::Fatal(Error::format(format!(
                            "{what}: a 206 answer with a bad Content-Range {range:?}"
                        ))))
                    }
                }
            } else {
                let len = header(&resp, "Content-Length").and_then(|s| s.parse().ok());
                (0, len)
            };
            return Ok(Body {
                reader: Box::new(resp.into_body().into_reader()),
                start,
                total,
            });
        }
        Err(Failure::Fatal(Error::io(format!(
            "{what}: too many redirects"
        ))))
    }

    /// `GET url` as JSON (the hub's API), at most `limit` bytes.
    pub fn get_json(&self, url: &str, what: &str, limit: u64) -> Result<serde_json::Value> {
        let text = self.retry(|| {
            let body = self.get(url, true, 0, what)?;
            let mut text = String::new();
            body.reader
                .take(limit + 1)
                .read_to_string(&mut text)
                .map_err(|e| Failure::Transient(format!("{what}: {url}: {e}")))?;
            if text.len() as u64 > limit {
                return Err(Failure::Fatal(Error::format(format!(
                    "{what}: the answer of {url} is over {limit} bytes"
                ))));
            }
            Ok(text)
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::format(format!("{what}: {url} answered no valid JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_joins() {
        assert_eq!(
            origin("https://huggingface.co/a/b"),
            "https://huggingface.co:443"
        );
        assert_eq!(origin("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
        assert_eq!(origin("http://Host/x"), origin("http://host:80/y"));
        assert_ne!(
            origin("http://127.0.0.1:1/x"),
            origin("http://127.0.0.1:2/x")
        );
        let base = "https://hub.example/org/m/resolve/main/f.gguf";
        assert_eq!(join(base, "/api/x"), "https://hub.example/api/x");
        assert_eq!(
            join(base, "//cdn.example/b?s=1"),
            "https://cdn.example/b?s=1"
        );
        assert_eq!(
            join(base, "g.gguf"),
            "https://hub.example/org/m/resolve/main/g.gguf"
        );
        assert_eq!(join(base, "http://cdn/x"), "http://cdn/x");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
    }

    #[test]
    fn status_lines() {
        let gated = status_error(401, Some("GatedRepo"), "o/n/f@main").message;
        assert!(
            gated.contains("gated") && gated.contains("HF_TOKEN"),
            "{gated}"
        );
        let denied = status_error(403, Some("GatedRepo"), "o/n/f@main").message;
        assert!(
            denied.contains("403") && denied.contains("no access"),
            "{denied}"
        );
        assert!(status_error(404, Some("EntryNotFound"), "x")
            .message
            .contains("no such file"));
    }
}
