//! The hub client (`bitnet::hub`, `bitnet download`, `-hf`) against a loopback hub started by
//! each test: two std TcpListeners on 127.0.0.1, the hub (resolve URLs, the file-list API) and
//! a "CDN" on another port (another origin: LFS files redirect there, it honours Range). Faults
//! are switched on per test: 503s, a connection dropped mid-file, wrong bytes. The
//! huggingface_hub Python client (pinned in tests/python/requirements.txt) shares the cache both
//! ways, and `bitnet run -hf` runs a fixture model end to end. No network.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bitnet::hub::{Config, Hub};
use common::{api_python, assert_ok, model, scratch, SplitMix64};
use sha1::Digest as _;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_good_token";

struct HubFile {
    name: String,
    bytes: Vec<u8>,
    /// Served like an LFS file: a redirect to the CDN with X-Linked-Etag = sha256.
    lfs: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl HubFile {
    fn sha256(&self) -> String {
        hex(&sha2::Sha256::digest(&self.bytes))
    }
    fn git_sha1(&self) -> String {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", self.bytes.len()).as_bytes());
        h.update(&self.bytes);
        hex(&h.finalize())
    }
}

struct Repo {
    id: String,
    gated: bool,
    files: Vec<HubFile>,
}

#[derive(Default)]
struct Faults {
    /// The next this many resolve requests answer 503.
    resolve_503: u32,
    /// The next CDN answer closes the connection after this many body bytes.
    drop_after: Option<usize>,
    /// The CDN serves its bytes with one byte changed.
    corrupt: bool,
}

#[derive(Clone, Debug)]
struct Logged {
    cdn: bool,
    method: String,
    path: String,
    range: Option<String>,
    auth: Option<String>,
    /// Body bytes written to the socket.
    sent: usize,
}

#[derive(Default)]
struct State {
    repos: Vec<Repo>,
    faults: Faults,
    log: Vec<Logged>,
    /// Connections accepted and not yet logged.
    in_flight: usize,
}

struct MiniHub {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Close after this many body bytes (Content-Length still announces them all).
    cut: Option<usize>,
}

fn answer(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Answer {
    Answer {
        status,
        headers,
        body,
        cut: None,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Service Unavailable",
    }
}

/// Writes the answer; returns the body bytes written.
fn write_answer(mut stream: &TcpStream, a: &Answer, head: bool) -> usize {
    let mut out = format!("HTTP/1.1 {} {}\r\n", a.status, reason(a.status));
    for (k, v) in &a.headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        a.body.len()
    );
    if stream.write_all(out.as_bytes()).is_err() || head {
        return 0;
    }
    let n = a.cut.unwrap_or(a.body.len()).min(a.body.len());
    match stream.write_all(&a.body[..n]) {
        Ok(()) => n,
        Err(_) => 0,
    }
}

fn error(status: u16, code: &str) -> Answer {
    answer(
        status,
        vec![
            ("X-Error-Code", code.to_string()),
            ("X-Repo-Commit", COMMIT.to_string()),
        ],
        b"{\"error\":\"no\"}".to_vec(),
    )
}

impl MiniHub {
    fn start(repos: Vec<Repo>) -> MiniHub {
        let state = Arc::new(Mutex::new(State {
            repos,
            ..State::default()
        }));
        let hub = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", hub.local_addr().unwrap());
        let cdn_base = format!("http://{}", cdn.local_addr().unwrap());
        for (listener, is_cdn) in [(hub, false), (cdn, true)] {
            let state = Arc::clone(&state);
            let cdn_base = cdn_base.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    // Counted before any answer is written, so a client that has its answer
                    // finds the connection counted.
                    state.lock().unwrap().in_flight += 1;
                    let state = Arc::clone(&state);
                    let cdn_base = cdn_base.clone();
                    std::thread::spawn(move || serve(&stream, &state, is_cdn, &cdn_base));
                }
            });
        }
        MiniHub { endpoint, state }
    }

    fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.lock().unwrap().faults)
    }

    /// The requests so far, once every accepted connection has been answered and logged.
    fn log(&self) -> Vec<Logged> {
        let t0 = std::time::Instant::now();
        loop {
            let s = self.state.lock().unwrap();
            if s.in_flight == 0 || t0.elapsed().as_secs() > 10 {
                return s.log.clone();
            }
            drop(s);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn config(&self, cache: &Path, token: Option<&str>) -> Config {
        Config {
            endpoint: self.endpoint.clone(),
            token: token.map(str::to_string),
            cache: cache.to_path_buf(),
            offline: false,
        }
    }
}

fn serve(stream: &TcpStream, state: &Mutex<State>, is_cdn: bool, cdn_base: &str) {
    let Some(req) = read_request(stream) else {
        state.lock().unwrap().in_flight -= 1;
        return;
    };
    let head = req.method == "HEAD";
    let a = {
        let mut s = state.lock().unwrap();
        if is_cdn {
            cdn_answer(&mut s, &req)
        } else {
            hub_answer(&mut s, &req, cdn_base)
        }
    };
    let sent = write_answer(stream, &a, head);
    let _ = stream.shutdown(Shutdown::Both);
    let mut s = state.lock().unwrap();
    s.in_flight -= 1;
    s.log.push(Logged {
        cdn: is_cdn,
        method: req.method,
        path: req.path,
        range: req.headers.get("range").cloned(),
        auth: req.headers.get("authorization").cloned(),
        sent,
    });
}

fn hub_answer(s: &mut State, req: &Request, cdn_base: &str) -> Answer {
    let path = req.path.split('?').next().unwrap_or("");
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((id, _rev)) = rest.split_once("/revision/") else {
            return error(404, "RepoNotFound");
        };
        let Some(repo) = s.repos.iter().find(|r| r.id == id) else {
            return error(401, "RepoNotFound");
        };
        let siblings: Vec<String> = repo
            .files
            .iter()
            .map(|f| format!("{{\"rfilename\":\"{}\"}}", f.name))
            .collect();
        let json = format!(
            "{{\"id\":\"{id}\",\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}",
            siblings.join(",")
        );
        return answer(200, vec![], json.into_bytes());
    }
    // /{org}/{name}/resolve/{revision}/{file...}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", rev, file] = parts[..] else {
        return error(404, "RepoNotFound");
    };
    let id = format!("{org}/{name}");
    if id == "org/renamed" {
        // A renamed repository: a relative redirect on the hub itself.
        return answer(
            307,
            vec![("Location", format!("/org/tiny/resolve/{rev}/{file}"))],
            vec![],
        );
    }
    let Some(repo) = s.repos.iter().find(|r| r.id == id) else {
        return error(401, "RepoNotFound");
    };
    if repo.gated {
        match req.headers.get("authorization").map(String::as_str) {
            None => return error(401, "GatedRepo"),
            Some(a) if a != format!("Bearer {TOKEN}") => return error(403, "GatedRepo"),
            Some(_) => {}
        }
    }
    if s.faults.resolve_503 > 0 {
        s.faults.resolve_503 -= 1;
        return answer(503, vec![], b"busy".to_vec());
    }
    if rev != "main" && rev != COMMIT {
        return error(404, "RevisionNotFound");
    }
    let Some(f) = repo.files.iter().find(|f| f.name == file) else {
        return error(404, "EntryNotFound");
    };
    let mut headers = vec![("X-Repo-Commit", COMMIT.to_string())];
    if f.lfs {
        headers.extend([
            ("X-Linked-Etag", format!("\"{}\"", f.sha256())),
            ("X-Linked-Size", f.bytes.len().to_string()),
            ("ETag", format!("\"{}\"", f.git_sha1())),
            (
                "Location",
                format!("{cdn_base}/blobs/{}?signature=abc", f.sha256()),
            ),
        ]);
        answer(302, headers, vec![])
    } else {
        headers.push(("ETag", format!("\"{}\"", f.git_sha1())));
        answer(200, headers, f.bytes.clone())
    }
}

fn cdn_answer(s: &mut State, req: &Request) -> Answer {
    let path = req.path.split('?').next().unwrap_or("");
    let sha = path.trim_start_matches("/blobs/");
    let Some(f) = s
        .repos
        .iter()
        .flat_map(|r| &r.files)
        .find(|f| f.lfs && f.sha256() == sha)
    else {
        return answer(404, vec![], vec![]);
    };
    let len = f.bytes.len();
    let start: Option<usize> = req.headers.get("range").and_then(|r| {
        r.strip_prefix("bytes=")?
            .strip_suffix('-')
            .and_then(|n| n.parse().ok())
    });
    let mut body = f.bytes[start.unwrap_or(0).min(len)..].to_vec();
    if s.faults.corrupt && !body.is_empty() {
        body[0] ^= 0xff;
    }
    let mut a = match start {
        Some(n) if n >= len => answer(416, vec![], vec![]),
        Some(n) => answer(
            206,
            vec![("Content-Range", format!("bytes {n}-{}/{len}", len - 1))],
            body,
        ),
        None => answer(200, vec![], body),
    };
    a.cut = s.faults.drop_after.take();
    a
}

/// 300 kB of seeded bytes: the "model" of the library tests.
fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

const BIG: usize = 300_000;

fn tiny_repo(id: &str, gated: bool) -> Repo {
    Repo {
        id: id.to_string(),
        gated,
        files: vec![
            HubFile {
                name: "model-i2_s.gguf".into(),
                bytes: blob(1, BIG),
                lfs: true,
            },
            HubFile {
                name: "config.json".into(),
                bytes: b"{\"model_type\": \"bitnet\"}\n".to_vec(),
                lfs: false,
            },
            HubFile {
                name: "sub/dir/notes.txt".into(),
                bytes: b"nested\n".to_vec(),
                lfs: false,
            },
        ],
    }
}

fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(bitnet::hub::cache::repo_folder_name(id))
}

/// The blobs directory's file names, sorted.
fn blobs(cache: &Path, id: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo_dir(cache, id).join("blobs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn body_bytes(log: &[Logged]) -> usize {
    log.iter().filter(|l| l.cdn).map(|l| l.sent).sum()
}

#[test]
fn fresh_download_lays_out_the_cache_like_huggingface_hub() {
    let hub = MiniHub::start(vec![tiny_repo("org/tiny", false)]);
    let cache = scratch("hub_fresh");
    let h = Hub::new(hub.config(&cache, Some(TOKEN)));
    let p = h.download("org/tiny", "model-i2_s.gguf", "main").unwrap();
    let dir = repo_dir(&cache, "org/tiny");
    assert_eq!(
        p,
        dir.join("snapshots").join(COMMIT).join("model-i2_s.gguf")
    );
    assert_eq!(std::fs::read(&p).unwrap(), blob(1, BIG));
    let sha = hex(&sha2::Sha256::digest(blob(1, BIG)));
    assert_eq!(
        std::fs::read_link(&p).unwrap(),
        Path::new("../../blobs").join(&sha)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("refs/main")).unwrap(),
        COMMIT
    );
    let nested = h.download("org/tiny", "sub/dir/notes.txt", "main").unwrap();
    assert_eq!(std::fs::read(&nested).unwrap(), b"nested\n");
    let small = h.download("org/tiny", "config.json", "main").unwrap();
    let git = tiny_repo("x/y", false).files[1].git_sha1();
    assert_eq!(
        std::fs::read_link(&small).unwrap(),
        Path::new("../../blobs").join(&git)
    );
    assert!(!blobs(&cache, "org/tiny")
        .iter()
        .any(|b| b.contains("incomplete")));

    let log = hub.log();
    // The token went to the hub, never to the CDN; the CDN got exactly the file once.
    assert!(
        log.iter().filter(|l| !l.cdn).all(|l| l.auth.is_some()),
        "{log:?}"
    );
    assert!(
        log.iter().filter(|l| l.cdn).all(|l| l.auth.is_none()),
        "{log:?}"
    );
    assert_eq!(body_bytes(&log), BIG, "{log:?}");

    // A second call finds the pointer: one HEAD, no body.
    let n = log.len();
    assert_eq!(
        h.download("org/tiny", "model-i2_s.gguf", "main").unwrap(),
        p
    );
    let log = hub.log();
    assert_eq!(log.len(), n + 1, "{log:?}");
    assert_eq!(log[n].method, "HEAD");
    // By commit: no request at all.
    assert_eq!(
        h.download("org/tiny", "model-i2_s.gguf", COMMIT).unwrap(),
        p
    );
    assert_eq!(hub.log().len(), n + 1);

    // The hook for `bitnet convert -hf`: the chosen files of a revision, as a directory.
    let snap = h.snapshot("org/tiny", "main", |f| {
        f.ends_with(".json") || f.ends_with(".txt")
    });
    let snap = snap.unwrap();
    assert_eq!(snap, dir.join("snapshots").join(COMMIT));
    assert!(snap.join("config.json").is_file() && snap.join("sub/dir/notes.txt").is_file());

    // A relative redirect on the hub (a renamed repository) is followed.
    let r = h.download("org/renamed", "config.json", "main").unwrap();
    assert_eq!(std::fs::read(r).unwrap(), std::fs::read(&small).unwrap());
}

#[test]
fn dropped_connection_resumes_from_the_partial_bytes() {
    let hub = MiniHub::start(vec![tiny_repo("org/tiny", false)]);
    let cache = scratch("hub_drop");
    let h = Hub::new(hub.config(&cache, None));
    hub.faults(|f| f.drop_after = Some(100_000));
    let p = h.download("org/tiny", "model-i2_s.gguf", "main").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), blob(1, BIG));
    let gets: Vec<Logged> = hub.log().into_iter().filter(|l| l.cdn).collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[0].sent, 100_000);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=100000-"), "{gets:?}");
    assert_eq!(gets[0].path, gets[1].path);
    // Every byte the client received was kept: nothing was sent twice.
    assert_eq!(body_bytes(&gets), BIG);

    // An interrupted run (the process died) leaves blobs/{sha}.incomplete: the next run sends
    // one Range request for the rest.
    let cache = scratch("hub_interrupted");
    let sha = hex(&sha2::Sha256::digest(blob(1, BIG)));
    let blobs_dir = repo_dir(&cache, "org/tiny").join("blobs");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    std::fs::write(
        blobs_dir.join(format!("{sha}.incomplete")),
        &blob(1, BIG)[..123_456],
    )
    .unwrap();
    let before = hub.log().len();
    let h = Hub::new(hub.config(&cache, None));
    let p = h.download("org/tiny", "model-i2_s.gguf", "main").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), blob(1, BIG));
    let gets: Vec<Logged> = hub.log()[before..]
        .iter()
        .filter(|l| l.cdn)
        .cloned()
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some("bytes=123456-"));
    assert_eq!(gets[0].sent, BIG - 123_456);
    assert_eq!(blobs(&cache, "org/tiny"), vec![sha]);
}

#[test]
fn wrong_bytes_are_refused_and_not_cached() {
    let hub = MiniHub::start(vec![tiny_repo("org/tiny", false)]);
    let cache = scratch("hub_corrupt");
    let h = Hub::new(hub.config(&cache, None));
    hub.faults(|f| f.corrupt = true);
    let err = h
        .download("org/tiny", "model-i2_s.gguf", "main")
        .unwrap_err();
    assert!(err.message.contains("sha256 mismatch"), "{err}");
    assert!(err.message.contains("deleted"), "{err}");
    // Nothing complete, nothing partial, no snapshot pointer.
    assert_eq!(blobs(&cache, "org/tiny"), Vec::<String>::new());
    let pointer = repo_dir(&cache, "org/tiny")
        .join("snapshots")
        .join(COMMIT)
        .join("model-i2_s.gguf");
    assert!(!pointer.exists() && pointer.symlink_metadata().is_err());
    // Once the server is right again, the file comes down whole.
    hub.faults(|f| f.corrupt = false);
    let p = h.download("org/tiny", "model-i2_s.gguf", "main").unwrap();
    assert_eq!(std::fs::read(p).unwrap(), blob(1, BIG));
}

#[test]
fn gated_missing_and_failing_repositories_get_one_clear_line() {
    let hub = MiniHub::start(vec![
        tiny_repo("org/gated", true),
        tiny_repo("org/tiny", false),
    ]);
    let cache = scratch("hub_errors");
    let anonymous = Hub::new(hub.config(&cache, None));
    let e = anonymous
        .download("org/gated", "config.json", "main")
        .unwrap_err();
    assert!(
        e.message.contains("401") && e.message.contains("gated") && e.message.contains("HF_TOKEN"),
        "{e}"
    );
    let wrong = Hub::new(hub.config(&cache, Some("hf_other")));
    let e = wrong
        .download("org/gated", "config.json", "main")
        .unwrap_err();
    assert!(
        e.message.contains("403") && e.message.contains("no access"),
        "{e}"
    );
    let good = Hub::new(hub.config(&cache, Some(TOKEN)));
    good.download("org/gated", "model-i2_s.gguf", "main")
        .unwrap();

    let e = good.download("org/tiny", "nope.gguf", "main").unwrap_err();
    assert!(
        e.message.contains("404") && e.message.contains("no such file"),
        "{e}"
    );
    let e = good.download("org/tiny", "config.json", "v9").unwrap_err();
    assert!(e.message.contains("no such revision"), "{e}");
    let e = good
        .download("org/absent", "config.json", "main")
        .unwrap_err();
    assert!(e.message.contains("repository not found"), "{e}");

    // Two 503s, then success: retried with backoff.
    hub.faults(|f| f.resolve_503 = 2);
    let before = hub.log().len();
    good.download("org/tiny", "config.json", "main").unwrap();
    let heads = hub.log()[before..]
        .iter()
        .filter(|l| l.method == "HEAD")
        .count();
    assert_eq!(heads, 3);
    // A hub that keeps failing: bounded tries, then one line.
    hub.faults(|f| f.resolve_503 = 100);
    let before = hub.log().len();
    let e = good
        .download("org/tiny", "sub/dir/notes.txt", "main")
        .unwrap_err();
    assert!(
        e.message.contains("HTTP 503") && e.message.contains("gave up after 5 tries"),
        "{e}"
    );
    assert_eq!(hub.log().len() - before, 5);
}

#[test]
fn offline_mode_uses_the_warm_cache_and_says_when_cold() {
    let hub = MiniHub::start(vec![tiny_repo("org/tiny", false)]);
    let cache = scratch("hub_offline");
    let online = Hub::new(hub.config(&cache, None));
    let p = online.model("org/tiny:i2_s", "main").unwrap();
    assert_eq!(p.0, "model-i2_s.gguf");
    let n = hub.log().len();
    let offline = Hub::new(Config {
        offline: true,
        ..hub.config(&cache, None)
    });
    assert_eq!(offline.model("org/tiny:i2_s", "main").unwrap(), p);
    assert_eq!(offline.model("org/tiny", "main").unwrap(), p);
    assert_eq!(hub.log().len(), n, "offline mode made requests");
    let e = offline
        .download("org/tiny", "config.json", "main")
        .unwrap_err();
    assert!(e.message.contains("HF_HUB_OFFLINE"), "{e}");
    let e = offline.model("org/other", "main").unwrap_err();
    assert!(e.message.contains("HF_HUB_OFFLINE"), "{e}");
}

/// huggingface_hub 2.4.0 (the pinned test venv) in a child process.
fn hf_python(code: &str, home: &Path, endpoint: &str, offline: bool) -> String {
    let out = Command::new(api_python())
        .args(["-c", code])
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("HF_TOKEN")
        .output()
        .expect("cannot run python");
    assert_ok("huggingface_hub", &out)
}

const HF_FETCH: &str = "import sys
from huggingface_hub import hf_hub_download, scan_cache_dir
for f in ('model-i2_s.gguf', 'config.json', 'sub/dir/notes.txt'):
    print(hf_hub_download('org/tiny', f))
info = scan_cache_dir()
assert not info.warnings, info.warnings
print(sum(len(r.revisions) for r in info.repos), 'revisions')
";

#[test]
fn huggingface_hub_and_we_share_one_cache_both_ways() {
    let hub = MiniHub::start(vec![tiny_repo("org/tiny", false)]);
    let files = ["model-i2_s.gguf", "config.json", "sub/dir/notes.txt"];

    // Ours downloads, theirs finds it offline (and their cache scanner finds it sound).
    let home = scratch("hub_ours_first");
    let ours = Hub::new(hub.config(&home.join("hub"), None));
    let our_paths: Vec<String> = files
        .iter()
        .map(|f| {
            let p = ours.download("org/tiny", f, "main").unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let n = hub.log().len();
    let theirs = hf_python(HF_FETCH, &home, &hub.endpoint, true);
    let lines: Vec<&str> = theirs.lines().collect();
    assert_eq!(lines[..3], our_paths[..], "{theirs}");
    assert_eq!(lines[3], "1 revisions", "{theirs}");
    assert_eq!(hub.log().len(), n, "huggingface_hub went online");

    // Theirs downloads from the loopback hub, ours finds it offline.
    let home = scratch("hub_theirs_first");
    let theirs = hf_python(HF_FETCH, &home, &hub.endpoint, false);
    let n = hub.log().len();
    let offline = Hub::new(Config {
        offline: true,
        ..hub.config(&home.join("hub"), None)
    });
    for (f, their_path) in files.iter().zip(theirs.lines()) {
        let p = offline.download("org/tiny", f, "main").unwrap();
        assert_eq!(p, Path::new(their_path));
    }
    let (file, _) = offline.model("org/tiny:i2_s", "main").unwrap();
    assert_eq!(file, "model-i2_s.gguf");
    assert_eq!(hub.log().len(), n);
}

/// `bitnet ARGS` with the hub environment pointing at the loopback hub.
fn bitnet_hub(args: &[&str], home: &Path, endpoint: &str) -> Output {
    bitnet_hub_env(args, home, endpoint, &[])
}

fn bitnet_hub_env(args: &[&str], home: &Path, endpoint: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        .output()
        .expect("cannot run bitnet")
}

#[test]
fn bitnet_run_hf_runs_a_fixture_model_from_the_loopback_hub() {
    let names = ["bitnet-b1.58-i2_s.gguf", "bitnet-b1.58-tq2_0.gguf"];
    let files = names
        .iter()
        .map(|n| HubFile {
            name: n.to_string(),
            bytes: std::fs::read(model(n)).unwrap(),
            lfs: true,
        })
        .collect();
    let hub = MiniHub::start(vec![
        Repo {
            id: "org/tiny-bitnet".into(),
            gated: false,
            files,
        },
        tiny_repo("org/gated", true),
    ]);
    let home = scratch("hub_cli");
    let gen = ["-p", "Hello world", "-n", "12", "--temp", "0", "-t", "1"];
    let local = |name: &str| {
        let m = model(name);
        let mut args = vec!["run", "-m", m.to_str().unwrap()];
        args.extend(gen);
        assert_ok("run -m", &common::bitnet(&args))
    };
    // First (a real download): with no selector, `download` picks the I2_S file and prints its path.
    let out = bitnet_hub(&["download", "org/tiny-bitnet"], &home, &hub.endpoint);
    let path = assert_ok("download", &out);
    // stderr is no terminal here: no progress bar, only the line naming the file.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("using bitnet-b1.58-i2_s.gguf") && !err.contains("MB/s"),
        "{err}"
    );
    assert!(
        path.trim()
            .ends_with(&format!("snapshots/{COMMIT}/{}", names[0])),
        "{path}"
    );
    for (spec, name) in [
        ("org/tiny-bitnet:bitnet-b1.58-i2_s.gguf", names[0]),
        ("org/tiny-bitnet:tq2_0", names[1]),
    ] {
        let mut args = vec!["run", "-hf", spec];
        args.extend(gen);
        let out = bitnet_hub(&args, &home, &hub.endpoint);
        let text = assert_ok("run -hf", &out);
        assert_eq!(text, local(name), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("using {name}")), "{err}");
    }
    // verify and bench take -hf too.
    let out = bitnet_hub(
        &["verify", "-hf", "org/tiny-bitnet:i2_s", "-n", "2"],
        &home,
        &hub.endpoint,
    );
    let report = assert_ok("verify -hf", &out);
    assert!(report.contains("PASS"), "{report}");
    let out = bitnet_hub(
        &[
            "bench",
            "-hf",
            "org/tiny-bitnet:tq2_0",
            "-p",
            "0",
            "-n",
            "2",
            "-r",
            "1",
            "-t",
            "1",
            "--json",
        ],
        &home,
        &hub.endpoint,
    );
    assert!(assert_ok("bench -hf", &out).contains("\"tg2_tok_s\":"));
    // The token: HF_TOKEN, else the file $HF_HOME/token (what `hf auth login` writes).
    let get = ["download", "org/gated", "config.json"];
    let out = bitnet_hub_env(&get, &home, &hub.endpoint, &[("HF_TOKEN", TOKEN)]);
    assert_ok("download with HF_TOKEN", &out);
    let home2 = scratch("hub_cli_token");
    let out = bitnet_hub_env(&get, &home2, &hub.endpoint, &[("HF_TOKEN", "")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("401") && err.contains("gated"),
        "{err}"
    );
    std::fs::write(home2.join("token"), format!("{TOKEN}\n")).unwrap();
    let out = bitnet_hub_env(&get, &home2, &hub.endpoint, &[("HF_TOKEN", "")]);
    assert_ok("download with $HF_HOME/token", &out);
    // Failures are one line each.
    for (args, says) in [
        (
            vec!["run", "-hf", "org/tiny-bitnet:q4_k_m", "-p", "x"],
            "no GGUF file of quantization q4_k_m",
        ),
        (
            vec!["download", "org/absent", "a.gguf"],
            "repository not found",
        ),
        (
            vec!["run", "-hf", "org/x", "-m", "y", "-p", "x"],
            "not both",
        ),
    ] {
        let out = bitnet_hub(&args, &home, &hub.endpoint);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(
            lines[0].starts_with("bitnet: error: ") && lines[0].contains(says),
            "{err}"
        );
    }
}

#[test]
fn a_full_disk_is_one_clear_line() {
    // blobs/{sha}.incomplete made a link to /dev/full: every write fails with ENOSPC.
    let hub = MiniHub::start(vec![tiny_repo("org/tiny", false)]);
    let cache = scratch("hub_full");
    let sha = hex(&sha2::Sha256::digest(blob(1, BIG)));
    let blobs_dir = repo_dir(&cache, "org/tiny").join("blobs");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", blobs_dir.join(format!("{sha}.incomplete"))).unwrap();
    let h = Hub::new(hub.config(&cache, None));
    let e = h
        .download("org/tiny", "model-i2_s.gguf", "main")
        .unwrap_err();
    assert!(e.message.starts_with("disk full: cannot write"), "{e}");
    assert!(!blobs_dir.join(&sha).exists());
}

#[test]
fn bitnet_convert_hf_converts_a_checkpoint_from_the_loopback_hub() {
    // The committed 1bitLLM fixture (sharded safetensors, SentencePiece tokenizer.model) served
    // as a hub repository, plus files a conversion does not need (not downloaded).
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/1bitllm");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let bytes = std::fs::read(src.join(&name)).unwrap();
        let lfs = name.ends_with(".safetensors") || name == "tokenizer.model";
        files.push(HubFile { name, bytes, lfs });
    }
    let hub = MiniHub::start(vec![Repo {
        // Named like the folder: general.name is the repository's NAME.
        id: "org/1bitllm".into(),
        gated: false,
        files,
    }]);
    let home = scratch("hub_convert");
    let from_hub = home.join("from-hub.gguf");
    let local = home.join("local.gguf");
    let args = ["-o", from_hub.to_str().unwrap(), "--type", "tq2_0"];
    let out = bitnet_hub(
        &[&["convert", "-hf", "org/1bitllm"][..], &args[..]].concat(),
        &home,
        &hub.endpoint,
    );
    assert_ok("convert -hf", &out);
    let out = common::bitnet(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        local.to_str().unwrap(),
        "--type",
        "tq2_0",
    ]);
    assert_ok("convert HF_DIR", &out);
    assert!(
        std::fs::read(&from_hub).unwrap() == std::fs::read(&local).unwrap(),
        "convert -hf and convert HF_DIR wrote different files"
    );
    // Only what a conversion reads came over the wire.
    let snap = repo_dir(&home.join("hub"), "org/1bitllm")
        .join("snapshots")
        .join(COMMIT);
    assert!(snap.join("tokenizer.model").exists());
    assert!(!snap.join("logits.f32").exists());
    // A selector is refused in one line.
    let out = bitnet_hub(
        &["convert", "-hf", "org/1bitllm:q8_0", "-o", "x.gguf"],
        &home,
        &hub.endpoint,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("takes a repository"), "{err}");
}
