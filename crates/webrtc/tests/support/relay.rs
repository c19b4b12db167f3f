//! A UDP relay between the two peers of a call, with a switch that drops everything: a
//! network path that goes away and comes back. Each side's candidates are rewritten to the
//! relay's sockets, so neither peer learns the other's real address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::UdpSocket;

/// The loopback UDP candidate of an SDP (the tests bind nothing else).
pub fn loopback_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        // foundation, component, transport, priority, address, port, "typ", type…
        if fields.get(2)?.eq_ignore_ascii_case("udp") && *fields.get(4)? == "127.0.0.1" {
            format!("127.0.0.1:{}", fields.get(5)?).parse().ok()
        } else {
            None
        }
    })
}

/// The SDP with its loopback candidates' port replaced.
pub fn rewrite_port(sdp: &str, port: u16) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            let Some(rest) = line.strip_prefix("a=candidate:") else {
                return line.to_owned();
            };
            let mut fields: Vec<String> = rest.split(' ').map(str::to_owned).collect();
            if fields.len() > 6 && fields[4] == "127.0.0.1" {
                fields[5] = port.to_string();
            }
            format!("a=candidate:{}", fields.join(" "))
        })
        .collect()
}

/// The relay's two sockets: one the client talks to, one the server talks to.
pub struct Relay {
    pub client_facing: Arc<UdpSocket>,
    pub server_facing: Arc<UdpSocket>,
}

impl Relay {
    pub async fn bind() -> Relay {
        Relay {
            client_facing: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
            server_facing: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
        }
    }

    pub fn client_port(&self) -> u16 {
        self.client_facing.local_addr().unwrap().port()
    }

    pub fn server_port(&self) -> u16 {
        self.server_facing.local_addr().unwrap().port()
    }

    /// Forwards both ways between `client` and `server` until the sockets fail; while
    /// `paused` is set, every packet is dropped.
    pub fn run(self, client: SocketAddr, server: SocketAddr, paused: Arc<AtomicBool>) {
        let (c, s) = (self.client_facing, self.server_facing);
        let forward = |from: Arc<UdpSocket>,
                       to: Arc<UdpSocket>,
                       dest: SocketAddr,
                       paused: Arc<AtomicBool>| async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, _)) = from.recv_from(&mut buf).await {
                if !paused.load(Ordering::Relaxed) {
                    let _ = to.send_to(&buf[..n], dest).await;
                }
            }
        };
        tokio::spawn(forward(c.clone(), s.clone(), server, paused.clone()));
        tokio::spawn(forward(s, c, client, paused));
    }
}
