//! What the identity challenge proves, attacked with the real daemon and the real CLI: a program on
//! another port that relays everything to the running daemon (challenge included) must not receive
//! the admin key. `POST /v1/identity` answers anyone, so an unbound proof is a signing oracle: the
//! relay would pass it and then be handed the key. The proof is bound to the address the
//! connection reached, which a relay cannot make the daemon see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP relay to `to` that records every byte its clients send.
struct Relay {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(r) = &record {
                    r.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Relay {
    fn start(to: SocketAddr) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let Ok(d) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
                    continue;
                };
                let (c2, d2) = (c.try_clone().unwrap(), d.try_clone().unwrap());
                let s = s.clone();
                std::thread::spawn(move || pump(c, d, Some(s)));
                std::thread::spawn(move || pump(d2, c2, None));
            }
        });
        Relay { addr, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

#[test]
fn a_relay_to_the_running_daemon_passes_no_challenge_and_gets_no_key() {
    let d = Daemon::start(&[]);
    let daemon: SocketAddr = d.base.trim_start_matches("http://").parse().unwrap();
    let relay = Relay::start(daemon);

    // The user names an address (a typo, a port an attacker took first): the key file's admin key
    // may go only to this install's daemon itself.
    let url = format!("http://{}", relay.addr);
    let out = command(d.dir.path())
        .args(["decisions", "list", "--data-dir", "data", "--url", &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let got = relay.text();
    assert!(
        got.contains("POST /v1/identity"),
        "the CLI never reached the relay:\n{got}\n{err}"
    );
    let lower = got.to_ascii_lowercase();
    assert!(
        !lower.contains("authorization") && !lower.contains("x-api-key") && !got.contains(&d.key),
        "the relay received the admin key:\n{got}"
    );
    assert!(!out.status.success(), "exit 0 through a relay: {err}");
    assert!(
        err.contains("did not prove") && err.contains("no key was sent"),
        "{err}"
    );

    // The daemon itself, named by address or by a host name, still proves itself.
    for url in [d.base.clone(), d.base.replace("127.0.0.1", "localhost")] {
        let out = command(d.dir.path())
            .args(["decisions", "list", "--data-dir", "data", "--url", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("ID"),
            "{url}"
        );
    }
}
