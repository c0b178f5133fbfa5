//! The hub client (`bitnet::hub`) against a loopback server that answers with the fuzz bytes:
//! every connection gets the next raw HTTP response of the input (status line, headers, body,
//! however broken), so redirects, `Range`/`Content-Range`, ETag / `X-Linked-Size` /
//! `X-Repo-Commit`, chunked and truncated bodies, error statuses and dropped connections all
//! go through the real client (ureq) and the real download, resume and verify code, into a
//! fresh cache folder. Two listeners are two origins: the hub (`{A}` in a response's head is
//! its URL) and a "CDN" (`{B}`), which must never see the token.
//!
//! Input: [operation, flags] then sections joined by `HUB_SEP`: first a partial download to
//! start from (`etag '\n' bytes`, empty for none), then the responses, in the order the
//! connections come. When they run out the server closes every further connection at once.
//! Built with `--cfg fuzzing` the client's retry backoff is zero (src/hub/http.rs), the tries
//! are still counted.
//!
//! Asserts besides "no crash, no hang": no request to the other origin carries the token; the
//! number of requests stays under what the retry and redirect limits allow; every blob in the
//! cache whose name is a sha256 or git sha1 hashes to its name (a file is published only when
//! its checksum matched); a path returned is inside the cache and readable.

#![no_main]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bitnet::hub::{Config, Hub};
use bitnet_fuzz::{fast_dir, quiet, HUB_COMMIT, HUB_SEP};
use libfuzzer_sys::fuzz_target;
use sha1::Digest as _;

const TOKEN: &str = "hf_fuzz_token";

#[derive(Default)]
struct State {
    responses: VecDeque<Vec<u8>>,
    /// (listener 0 = hub / 1 = CDN, whether the request carried Authorization).
    log: Vec<(usize, bool)>,
}

struct Server {
    bases: [String; 2],
    state: Mutex<State>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<&'static Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listeners = [0, 1].map(|_| TcpListener::bind("127.0.0.1:0").expect("bind loopback"));
        let bases = [0, 1].map(|i| {
            format!(
                "http://127.0.0.1:{}",
                listeners[i].local_addr().unwrap().port()
            )
        });
        let server: &'static Server = Box::leak(Box::new(Server {
            bases,
            state: Mutex::new(State::default()),
        }));
        for (i, listener) in listeners.into_iter().enumerate() {
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    serve(server, i, stream);
                }
            });
        }
        server
    })
}

/// The request head (up to the blank line, at most 16 KiB): whether it has Authorization.
fn read_head(stream: &mut TcpStream) -> Option<bool> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() > 16 << 10 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    Some(text.contains("\nauthorization:"))
}

/// `{A}` / `{B}` in the head of a response become the two servers' URLs.
fn expand(response: &[u8], bases: &[String; 2]) -> Vec<u8> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&response[..split])
        .replace("{A}", &bases[0])
        .replace("{B}", &bases[1]);
    let mut out = head.into_bytes();
    out.extend_from_slice(&response[split..]);
    out
}

fn serve(server: &Server, listener: usize, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some(auth) = read_head(&mut stream) else {
        return;
    };
    let next = {
        let mut s = server.state.lock().unwrap();
        s.log.push((listener, auth));
        s.responses.pop_front()
    };
    if let Some(response) = next {
        let _ = stream.write_all(&expand(&response, &server.bases));
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = vec![];
    while let Some(p) = data.windows(sep.len()).position(|w| w == sep) {
        parts.push(&data[..p]);
        data = &data[p + sep.len()..];
    }
    parts.push(data);
    parts
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every published blob named by a digest holds the bytes that digest names.
fn check_blobs(cache: &Path) {
    let Ok(repos) = std::fs::read_dir(cache) else {
        return;
    };
    for repo in repos.flatten() {
        let Ok(blobs) = std::fs::read_dir(repo.path().join("blobs")) else {
            continue;
        };
        for blob in blobs.flatten() {
            let name = blob.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue; // `.incomplete` files, and ETags that are not digests (not verified)
            }
            let bytes = std::fs::read(blob.path()).expect("a blob reads");
            let got = match name.len() {
                64 => hex(&sha2::Sha256::digest(&bytes)),
                40 => {
                    let mut h = sha1::Sha1::new();
                    h.update(format!("blob {}\0", bytes.len()).as_bytes());
                    h.update(&bytes);
                    hex(&h.finalize())
                }
                _ => continue,
            };
            assert!(
                got.eq_ignore_ascii_case(&name),
                "blob {name} published with bytes that hash to {got}"
            );
        }
    }
}

fn check_path(path: &Path, cache: &Path) {
    let real = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{} returned but does not resolve: {e}", path.display()));
    let root = cache.canonicalize().unwrap();
    assert!(
        real.starts_with(&root),
        "{} is outside the cache",
        real.display()
    );
    std::fs::read(&real).expect("a returned file reads");
}

fn cache_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fast_dir("hub"))
}

fuzz_target!(init: quiet(), |data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (op, flags) = (data[0], data[1]);
    let sections = split(&data[2..], HUB_SEP);
    let srv = server();
    let cache = cache_dir();
    let _ = std::fs::remove_dir_all(cache);
    std::fs::create_dir_all(cache).unwrap();
    let repo = "org/name";
    let repo_dir = cache.join("models--org--name");
    // A partial download to resume from.
    if let Some(nl) = sections[0].iter().position(|&b| b == b'\n') {
        let etag = String::from_utf8_lossy(&sections[0][..nl]).into_owned();
        if bitnet::hub::cache::is_safe_name(&etag) {
            let blobs = repo_dir.join("blobs");
            std::fs::create_dir_all(&blobs).unwrap();
            std::fs::write(
                blobs.join(format!("{etag}.incomplete")),
                &sections[0][nl + 1..],
            )
            .unwrap();
        }
    }
    {
        let mut s = srv.state.lock().unwrap();
        s.log.clear();
        s.responses = sections[1..].iter().map(|r| r.to_vec()).collect();
    }
    let hub = Hub::new(Config {
        endpoint: srv.bases[0].clone(),
        token: (flags & 1 == 1).then(|| TOKEN.to_string()),
        cache: cache.clone(),
        offline: false,
    });
    // Files a call may download, for the request bound below.
    let mut files = 1;
    let outcome = match op % 5 {
        0 => hub.download(repo, "model.gguf", "main").map(|p| {
            check_path(&p, cache);
            p
        }),
        1 => hub
            .download(repo, "sub/dir/model.safetensors", HUB_COMMIT)
            .map(|p| {
                check_path(&p, cache);
                p
            }),
        2 => {
            files = 0;
            hub.list_files(repo, "main").map(|(commit, list)| {
                assert!(bitnet::hub::cache::is_commit(&commit), "{commit:?}");
                PathBuf::from(format!("{} files", list.len()))
            })
        }
        3 => hub.model(&format!("{repo}:Q2_K"), "main").map(|(_, p)| {
            check_path(&p, cache);
            p
        }),
        _ => {
            // The files `bitnet convert -hf` fetches (the snapshot hook).
            files = 64;
            hub.snapshot(repo, "main", |f| {
                f.ends_with(".json") || f.ends_with(".safetensors")
            })
            .inspect(|dir| assert!(dir.starts_with(cache)))
        }
    };
    if std::env::var_os("BITNET_FUZZ_VERBOSE").is_some() {
        eprintln!("hub: {outcome:?}");
    }
    let log = std::mem::take(&mut srv.state.lock().unwrap().log);
    assert!(
        log.iter().all(|&(listener, auth)| listener == 0 || !auth),
        "the token went to the other origin"
    );
    // resolve: 5 tries x 10 redirects; fetch: 50 tries x 10 redirects; the list: 5 x 10.
    let bound = 50 + files * (50 + 500);
    assert!(log.len() <= bound, "{} requests (bound {bound})", log.len());
    check_blobs(cache);
});
