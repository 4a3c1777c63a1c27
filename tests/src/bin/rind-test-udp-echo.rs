//! A UDP echo server for the network tests (busybox has none): answers each
//! datagram on `0.0.0.0:PORT` with the same bytes. Run inside a container
//! through the host's dynamic loader and libraries, bind-mounted.

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "53".into());
    let s = std::net::UdpSocket::bind(format!("0.0.0.0:{port}")).expect("bind");
    let mut buf = [0u8; 1500];
    loop {
        if let Ok((n, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], peer);
        }
    }
}
