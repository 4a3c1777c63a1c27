//! A forwarding HTTP proxy on 127.0.0.1 for tests of `HTTP_PROXY`: it
//! takes absolute-form requests (`GET http://host:port/path`) and CONNECT
//! tunnels, passes the bytes both ways and records each target it was
//! asked for. One thread per connection; gone when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    addr: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let seen = seen2.clone();
                        std::thread::spawn(move || forward(s, &seen));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Proxy { addr, stop, seen }
    }

    /// `http://127.0.0.1:PORT`, for `HTTP_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Each request line it was asked to forward.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One request per connection (the head rewritten to origin form, with
/// `Connection: close`), or a CONNECT tunnel.
fn forward(client: TcpStream, seen: &Mutex<Vec<String>>) {
    client.set_nonblocking(false).unwrap();
    let mut r = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    seen.lock().unwrap().push(line.trim_end().to_string());
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut head = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if !lower.starts_with("connection:") && !lower.starts_with("proxy-connection:") && !lower.starts_with("keep-alive:") {
            head.push(h);
        }
    }
    let mut client_w = client;
    if method == "CONNECT" {
        let Ok(upstream) = TcpStream::connect(&target) else { return };
        let _ = client_w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        pipe(r, client_w, upstream);
        return;
    }
    let Some(rest) = target.strip_prefix("http://") else { return };
    let (host, path) = rest.split_once('/').map(|(h, p)| (h.to_string(), format!("/{p}"))).unwrap_or((rest.to_string(), "/".into()));
    let Ok(mut upstream) = TcpStream::connect(&host) else { return };
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for h in head {
        req.push_str(&h);
    }
    req.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(req.as_bytes()).is_err() {
        return;
    }
    pipe(r, client_w, upstream);
}

/// Bytes both ways until either side closes.
fn pipe(mut from_client: BufReader<TcpStream>, mut to_client: TcpStream, upstream: TcpStream) {
    let mut up_w = upstream.try_clone().unwrap();
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut up_w);
        let _ = up_w.shutdown(std::net::Shutdown::Write);
    });
    let mut up_r = upstream;
    let mut buf = [0u8; 64 << 10];
    loop {
        match up_r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to_client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_client.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
}
