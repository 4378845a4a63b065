//! Hosts in network namespaces, joined by veth pairs, for tests that need a real kernel network.
//!
//! A [`Netns`] is one namespace (`snl-<hint>-<pid>-<n>`, unique per process and call, so tests run in
//! parallel); dropping it deletes the namespace, and with it every veth end inside. A [`Lan`] is a small
//! routed topology: the first host is the hub (the "victim", with forwarding on) and every other host has
//! its own veth link to it. Only documentation addresses are used (192.0.2.0/24, 2001:db8::/32), and the
//! veths are created inside the namespaces, so nothing ever appears in, or is sent from, the host's own
//! network namespace. Traffic helpers ([`Netns::listen_tcp`], [`Netns::connect_tcp`],
//! [`Netns::send_tcp_for`]) run tiny `python3` programs inside a namespace.
//!
//! **Tests using this need root** (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`), `ip` (iproute2) and `python3`.
//! Without them [`Netns::new`] returns an error that says so: tests fail loudly, they never skip.
//! This module must not touch the host's namespace, its interfaces, or its nftables ruleset.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `snl-<hint>-<pid>-<n>` and brings its loopback up. Fails loudly when not run as root.
    pub fn new(hint: &str) -> io::Result<Netns> {
        let hint: String = hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("snl-{hint}-{}-{n}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &name]).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`ip netns add {name}` failed ({}); namespace tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let ns = Netns { name };
        ns.run("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns exec` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, cmd]).args(args);
        c
    }

    /// Runs `cmd args…` inside the namespace and returns its output, whatever its exit status.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> io::Result<Output> {
        self.command(cmd, args).stdin(Stdio::null()).output()
    }

    /// Runs `cmd args…` inside the namespace; a non-zero exit is an error carrying stderr. Returns stdout.
    pub fn run(&self, cmd: &str, args: &[&str]) -> io::Result<String> {
        let out = self.exec(cmd, args)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "in {}: `{cmd} {}` failed ({}): {}",
                self.name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `cmd args…` inside the namespace with stdout and stderr piped. The caller owns the child.
    pub fn spawn(&self, cmd: &str, args: &[&str]) -> io::Result<Child> {
        self.command(cmd, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// Runs `nft -f -` inside the namespace with `script` on stdin.
    pub fn nft_script(&self, script: &str) -> io::Result<()> {
        use std::io::Write;
        let mut child = self
            .command("nft", &["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "nft -f failed in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The namespace's whole nftables ruleset, as `nft list ruleset` prints it.
    pub fn nft_ruleset(&self) -> io::Result<String> {
        self.run("nft", &["list", "ruleset"])
    }

    /// Starts a TCP listener on `addr` that greets every connection with `banner\n`, counts what it
    /// receives, and reports each connection's peer and byte count (see [`Listener`]).
    pub fn listen_tcp(&self, addr: SocketAddr, banner: &str) -> io::Result<Listener> {
        let ip = addr.ip().to_string();
        let port = addr.port().to_string();
        let child = self.spawn("python3", &["-c", LISTENER_PY, &ip, &port, banner])?;
        Listener::start(child)
    }

    /// Tries a TCP connection to `to` within `timeout`; returns the first line the server sent
    /// (a [`Listener`]'s banner), or `None` when the connection failed or nothing arrived in time.
    pub fn connect_tcp(&self, to: SocketAddr, timeout: Duration) -> io::Result<Option<String>> {
        let out = self.exec(
            "python3",
            &[
                "-c",
                CONNECT_PY,
                &to.ip().to_string(),
                &to.port().to_string(),
                &timeout.as_secs_f64().to_string(),
            ],
        )?;
        if out.status.success() {
            Ok(Some(
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            ))
        } else {
            Ok(None)
        }
    }

    /// Sends as fast as it can to `to` for `dur`, then resets the connection. Fails when it cannot
    /// connect. Pair with [`Listener::wait_closed`] to measure throughput at the receiver.
    pub fn send_tcp_for(&self, to: SocketAddr, dur: Duration) -> io::Result<()> {
        self.run(
            "python3",
            &[
                "-c",
                SENDER_PY,
                &to.ip().to_string(),
                &to.port().to_string(),
                &dur.as_secs_f64().to_string(),
            ],
        )
        .map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes the veth ends inside it (and so their peers).
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Bytes per second received by `listener` from `from`'s address while `from` sends to `to` for `dur`.
pub fn measure_throughput(
    from: &Host,
    to: SocketAddr,
    listener: &Listener,
    dur: Duration,
) -> io::Result<f64> {
    let src = if to.is_ipv4() {
        IpAddr::V4(from.v4)
    } else {
        IpAddr::V6(from.v6)
    };
    listener.clear();
    from.ns.send_tcp_for(to, dur)?;
    let bytes = listener
        .wait_closed(src, Duration::from_secs(10))
        .ok_or_else(|| io::Error::other("the receiver never reported the connection's end"))?;
    Ok(bytes as f64 / dur.as_secs_f64())
}

/// What a [`Listener`] reported, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerEvent {
    /// A connection from this peer was accepted.
    Accepted(IpAddr),
    /// A connection from this peer ended after this many bytes were received.
    Closed(IpAddr, u64),
}

type Events = Arc<(Mutex<VecDeque<ListenerEvent>>, Condvar)>;

/// A TCP listener process inside a namespace; killed on drop.
#[derive(Debug)]
pub struct Listener {
    child: Child,
    events: Events,
}

impl Listener {
    fn start(mut child: Child) -> io::Result<Listener> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("listener has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(l)) if l == "ready" => {}
            other => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "listener did not start ({other:?}): {}",
                    err.trim()
                )));
            }
        }
        let events: Events = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
        let ev = Arc::clone(&events);
        thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut parts = line.split_whitespace();
                let parsed = match (parts.next(), parts.next(), parts.next()) {
                    (Some("accept"), Some(ip), _) => ip.parse().ok().map(ListenerEvent::Accepted),
                    (Some("closed"), Some(ip), Some(n)) => match (ip.parse(), n.parse()) {
                        (Ok(ip), Ok(n)) => Some(ListenerEvent::Closed(ip, n)),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(e) = parsed {
                    if let Ok(mut q) = ev.0.lock() {
                        q.push_back(e);
                        ev.1.notify_all();
                    }
                }
            }
        });
        Ok(Listener { child, events })
    }

    /// Everything reported so far.
    pub fn events(&self) -> Vec<ListenerEvent> {
        self.events
            .0
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The peers of every accepted connection so far.
    pub fn peers(&self) -> Vec<IpAddr> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                ListenerEvent::Accepted(ip) => Some(ip),
                ListenerEvent::Closed(..) => None,
            })
            .collect()
    }

    /// Waits until a connection from `peer` was accepted (the listener reports it on its own
    /// stdout, read by a thread: it may come in a moment after the banner did); `false` on timeout.
    pub fn wait_accepted(&self, peer: IpAddr, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.events;
        let Ok(mut q) = lock.lock() else {
            return false;
        };
        loop {
            if q.iter()
                .any(|e| matches!(e, ListenerEvent::Accepted(ip) if *ip == peer))
            {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match cvar.wait_timeout(q, left) {
                Ok((g, _)) => q = g,
                Err(_) => return false,
            }
        }
    }

    /// Forgets what was reported so far.
    pub fn clear(&self) {
        if let Ok(mut q) = self.events.0.lock() {
            q.clear();
        }
    }

    /// Waits until a connection from `peer` ends; returns the bytes received on it.
    pub fn wait_closed(&self, peer: IpAddr, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.events;
        let mut q = lock.lock().ok()?;
        loop {
            let found = q.iter().find_map(|e| match e {
                ListenerEvent::Closed(ip, n) if *ip == peer => Some(*n),
                _ => None,
            });
            if found.is_some() {
                return found;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            q = cvar.wait_timeout(q, left).ok()?.0;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One host of a [`Lan`]: its namespace and addresses.
#[derive(Debug)]
pub struct Host {
    /// The host's name in the topology (`victim`, `attacker`, …).
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its IPv4 address (from 192.0.2.0/24).
    pub v4: Ipv4Addr,
    /// Its IPv6 address (from 2001:db8::/32).
    pub v6: Ipv6Addr,
}

impl Host {
    /// Its IPv4 address with a port.
    pub fn sock_v4(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.v4), port)
    }

    /// Its IPv6 address with a port.
    pub fn sock_v6(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(self.v6), port)
    }
}

/// A routed star: the first host is the hub (forwarding on), every other host has its own link to it.
///
/// Addresses: the hub answers on 192.0.2.1 and 2001:db8::1 (on its loopback, reachable from every
/// link). Host `i` (1-based, at most 14) sits on link 192.0.2.16i/28 and 2001:db8:0:i::/64 as `.16i+2` and
/// `::2`, with the hub at `.16i+1` and `::1`, and a default route through the hub.
#[derive(Debug)]
pub struct Lan {
    hosts: Vec<Host>,
}

impl Lan {
    /// Builds the topology; `names[0]` is the hub. Everything is removed when the `Lan` is dropped.
    pub fn new(names: &[&str]) -> io::Result<Lan> {
        if names.is_empty() || names.len() > 15 {
            return Err(io::Error::other("a Lan has 1 to 15 hosts"));
        }
        let hub = Netns::new(names[0])?;
        hub.run("ip", &["addr", "add", "192.0.2.1/32", "dev", "lo"])?;
        hub.run("ip", &["-6", "addr", "add", "2001:db8::1/128", "dev", "lo"])?;
        hub.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        hub.run("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])?;
        let mut hosts = vec![Host {
            name: names[0].to_string(),
            ns: hub,
            v4: Ipv4Addr::new(192, 0, 2, 1),
            v6: "2001:db8::1".parse().map_err(io::Error::other)?,
        }];
        for (i, name) in names.iter().enumerate().skip(1) {
            let host = Self::link(&hosts[0].ns, i as u8, name)?;
            hosts.push(host);
        }
        Ok(Lan { hosts })
    }

    fn link(hub: &Netns, i: u8, name: &str) -> io::Result<Host> {
        let ns = Netns::new(name)?;
        let hub_if = format!("h{i}");
        hub.run(
            "ip",
            &[
                "link",
                "add",
                &hub_if,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ],
        )?;
        let base = 16 * i;
        let hub4 = Ipv4Addr::new(192, 0, 2, base + 1);
        let host4 = Ipv4Addr::new(192, 0, 2, base + 2);
        let hub6: Ipv6Addr = format!("2001:db8:0:{i:x}::1")
            .parse()
            .map_err(io::Error::other)?;
        let host6: Ipv6Addr = format!("2001:db8:0:{i:x}::2")
            .parse()
            .map_err(io::Error::other)?;
        hub.run(
            "ip",
            &["addr", "add", &format!("{hub4}/28"), "dev", &hub_if],
        )?;
        hub.run(
            "ip",
            &[
                "-6",
                "addr",
                "add",
                &format!("{hub6}/64"),
                "dev",
                &hub_if,
                "nodad",
            ],
        )?;
        hub.run("ip", &["link", "set", &hub_if, "up"])?;
        ns.run(
            "ip",
            &["addr", "add", &format!("{host4}/28"), "dev", "eth0"],
        )?;
        ns.run(
            "ip",
            &[
                "-6",
                "addr",
                "add",
                &format!("{host6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        )?;
        ns.run("ip", &["link", "set", "eth0", "up"])?;
        ns.run("ip", &["route", "add", "default", "via", &hub4.to_string()])?;
        ns.run(
            "ip",
            &["-6", "route", "add", "default", "via", &hub6.to_string()],
        )?;
        Ok(Host {
            name: name.to_string(),
            ns,
            v4: host4,
            v6: host6,
        })
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The hub (the first name given).
    pub fn hub(&self) -> &Host {
        &self.hosts[0]
    }

    /// Every host, hub first.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
}

const LISTENER_PY: &str = r#"
import socket, sys, threading
addr, port, banner = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(128)
print('ready', flush=True)
def serve(c, peer):
    n = 0
    print('accept', peer, flush=True)
    try:
        c.sendall((banner + '\n').encode())
        while True:
            d = c.recv(262144)
            if not d:
                break
            n += len(d)
    except OSError:
        pass
    print('closed', peer, n, flush=True)
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a[0]), daemon=True).start()
"#;

const CONNECT_PY: &str = r#"
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    line = c.makefile().readline()
    c.close()
    if not line:
        sys.exit(1)
    print(line.strip())
except OSError:
    sys.exit(1)
"#;

const SENDER_PY: &str = r#"
import socket, struct, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
c.settimeout(0.2)
end = time.time() + float(sys.argv[3])
buf = b'x' * 65536
while time.time() < end:
    try:
        c.send(buf)
    except socket.timeout:
        pass
# Let a rate limiter's bucket refill so the closing RST is not dropped with the excess.
time.sleep(1.0)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
c.close()
"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lan_hosts_reach_the_hub_over_v4_and_v6_and_are_removed_on_drop() {
        let lan = Lan::new(&["victim", "attacker", "bystander"]).unwrap();
        let victim = lan.hub();
        let attacker = lan.host("attacker").unwrap();
        let l4 = victim.ns.listen_tcp(victim.sock_v4(8080), "v4").unwrap();
        let l6 = victim.ns.listen_tcp(victim.sock_v6(8080), "v6").unwrap();
        let t = Duration::from_secs(3);
        assert_eq!(
            attacker.ns.connect_tcp(victim.sock_v4(8080), t).unwrap(),
            Some("v4".into())
        );
        assert_eq!(
            attacker.ns.connect_tcp(victim.sock_v6(8080), t).unwrap(),
            Some("v6".into())
        );
        assert_eq!(
            attacker.ns.connect_tcp(victim.sock_v4(8081), t).unwrap(),
            None
        );
        let bps = measure_throughput(
            attacker,
            victim.sock_v4(8080),
            &l4,
            Duration::from_millis(500),
        )
        .unwrap();
        assert!(bps > 1_000_000.0, "throughput {bps}");
        assert!(l4.peers().is_empty() || l4.peers().contains(&IpAddr::V4(attacker.v4)));
        drop((l4, l6));
        let names: Vec<String> = lan
            .hosts()
            .iter()
            .map(|h| h.ns.name().to_string())
            .collect();
        drop(lan);
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        for n in names {
            assert!(!list.split_whitespace().any(|w| w == n), "{n} still exists");
        }
    }
}
