//! A registry that misbehaves on purpose, on 127.0.0.1: one image
//! (`x:v1`, one layer) whose blobs and manifest come back as a test says:
//! too many bytes, errors before success, a redirect to another port, a
//! manifest that does not parse. HTTP/1.1, one thread per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::image::{self, Layer};

/// How the layer blob is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blob {
    Good,
    /// The blob, then more bytes than the descriptor's size.
    TooLong,
    /// 503 for the first `n` requests, then the blob.
    Unavailable(usize),
    /// 307 to the same server on another port (a CDN, say).
    Redirect,
    /// For the first `n` requests: the headers, half the body, then
    /// silence (until the registry drops); then the blob.
    Hang(usize),
}

pub struct FakeRegistry {
    addr: String,
    stop: Arc<AtomicBool>,
    /// Requests seen, as "METHOD PATH".
    pub seen: Arc<Mutex<Vec<String>>>,
    _cdn: Option<Box<FakeRegistry>>,
}

struct Content {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
    layer: String,
}

/// busybox, then a layer of one file, `/hello`: the one that misbehaves.
fn content(malformed: bool) -> Content {
    let (base, layer) = (image::busybox_layer(), Layer::of_files(&[("hello", b"from the fake registry\n".as_slice())]));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [base.diff_id, layer.diff_id]}
    }))
    .unwrap();
    let manifest = if malformed {
        br#"{"schemaVersion": 2, "config": {"digest": 42}}"#.to_vec()
    } else {
        image::oci_manifest(&config, &[base.clone(), layer.clone()])
    };
    let digest = image::digest(&layer.blob);
    let mut blobs = HashMap::new();
    blobs.insert(image::digest(&config), config);
    blobs.insert(image::digest(&base.blob), base.blob);
    blobs.insert(digest.clone(), layer.blob);
    Content { manifest, blobs, layer: digest }
}

impl FakeRegistry {
    pub fn start(blob: Blob) -> FakeRegistry {
        FakeRegistry::serve(blob, false)
    }

    /// A registry whose manifest for `x:v1` does not parse.
    pub fn malformed() -> FakeRegistry {
        FakeRegistry::serve(Blob::Good, true)
    }

    fn serve(blob: Blob, malformed: bool) -> FakeRegistry {
        let cdn = (blob == Blob::Redirect).then(|| Box::new(FakeRegistry::serve(Blob::Good, malformed)));
        let cdn_addr = cdn.as_ref().map(|c| c.addr.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(0));
        let content = Arc::new(content(malformed));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (content, seen, failures, cdn) = (content.clone(), seen2.clone(), failures.clone(), cdn_addr.clone());
                        let stop = stop2.clone();
                        std::thread::spawn(move || answer(s, &content, blob, &seen, &failures, cdn.as_deref(), &stop));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        FakeRegistry { addr, stop, seen, _cdn: cdn }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The layer's digest.
    pub fn layer(&self) -> String {
        content(false).layer
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(
    mut s: TcpStream,
    c: &Content,
    blob: Blob,
    seen: &Mutex<Vec<String>>,
    failures: &AtomicUsize,
    cdn: Option<&str>,
    stop: &AtomicBool,
) {
    s.set_nonblocking(false).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        seen.lock().unwrap().push(format!("{method} {path}"));
        let reply = |s: &mut TcpStream, status: &str, headers: &str, body: &[u8], len: usize| {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n{headers}\r\n");
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        };
        if path == "/v2/" {
            reply(&mut s, "200 OK", "Docker-Distribution-API-Version: registry/2.0\r\n", b"{}", 2);
        } else if path.starts_with("/v2/x/manifests/") {
            let ct = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";
            reply(&mut s, "200 OK", ct, &c.manifest, c.manifest.len());
        } else if let Some(d) = path.strip_prefix("/v2/x/blobs/") {
            let Some(data) = c.blobs.get(d) else {
                reply(&mut s, "404 Not Found", "", b"", 0);
                continue;
            };
            let is_layer = d == c.layer;
            match blob {
                Blob::TooLong if is_layer => {
                    // Says the true size, sends more: the client stops at the descriptor's size.
                    let mut body = data.clone();
                    body.extend_from_slice(&[0u8; 4096]);
                    reply(&mut s, "200 OK", "", &body, body.len());
                }
                Blob::Unavailable(n) if is_layer && failures.fetch_add(1, Ordering::SeqCst) < n => {
                    reply(&mut s, "503 Service Unavailable", "", b"down", 4);
                }
                Blob::Redirect if is_layer => {
                    let to = format!("Location: http://{}{path}\r\n", cdn.unwrap());
                    reply(&mut s, "307 Temporary Redirect", &to, b"", 0);
                }
                Blob::Hang(n) if is_layer && failures.fetch_add(1, Ordering::SeqCst) < n => {
                    reply(&mut s, "200 OK", "", &data[..data.len() / 2], data.len());
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    return;
                }
                _ => reply(&mut s, "200 OK", "", data, data.len()),
            }
        } else {
            reply(&mut s, "404 Not Found", "", b"", 0);
        }
    }
}
