//! The syslog receiver on real sockets (127.0.0.1 only).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_ingest::source::syslog::{SyslogConfig, SyslogReceiver};
use sentinel_ingest::source::{RawLine, SourceMetrics};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

async fn recv(rx: &mut mpsc::Receiver<RawLine>) -> RawLine {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn source_syslog_udp_tcp_framing_and_connection_cap() {
    let metrics = Arc::new(SourceMetrics::default());
    let local = "127.0.0.1:0".parse().unwrap();
    let cfg = SyslogConfig {
        udp: Some(local),
        tcp: Some(local),
        max_message_bytes: 64,
        max_connections: 2,
        ..SyslogConfig::default()
    };
    let rx_side = SyslogReceiver::bind(cfg, metrics.clone()).await.unwrap();
    let (udp_addr, tcp_addr) = (rx_side.udp_addr().unwrap(), rx_side.tcp_addr().unwrap());
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rx_side.run(tx, async move {
        let _ = stopped.await;
    }));

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(
            b"<34>1 2026-01-01T00:00:00Z host app - - - over udp\n",
            udp_addr,
        )
        .await
        .unwrap();
    let l = recv(&mut rx).await;
    assert_eq!(l.text, "<34>1 2026-01-01T00:00:00Z host app - - - over udp");
    assert_eq!(&*l.origin, format!("syslog:udp:{udp_addr}"));

    let mut a = TcpStream::connect(tcp_addr).await.unwrap();
    let msg = "<13>1 - host app - - - octet counted\nwith newline inside";
    a.write_all(
        format!(
            "<13>Jan  1 00:00:00 host sshd[1]: newline framed\r\n{} {msg}",
            msg.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(
        recv(&mut rx).await.text,
        "<13>Jan  1 00:00:00 host sshd[1]: newline framed"
    );
    let l = recv(&mut rx).await;
    assert_eq!(l.text, msg);
    assert_eq!(&*l.origin, format!("syslog:tcp:{tcp_addr}"));

    // Oversized message: cut and counted.
    a.write_all(format!("<13>{}\n", "x".repeat(200)).as_bytes())
        .await
        .unwrap();
    assert_eq!(recv(&mut rx).await.text.len(), 64);

    let mut b = TcpStream::connect(tcp_addr).await.unwrap();
    b.write_all(b"<13>second connection\n").await.unwrap();
    assert_eq!(recv(&mut rx).await.text, "<13>second connection");

    // A third connection is over the cap: closed at once and counted.
    let mut c = TcpStream::connect(tcp_addr).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let s = metrics.snapshot();
    assert_eq!(
        (s.connections_refused, s.lines_too_long, s.lines_read),
        (1, 1, 5)
    );

    // Closing one frees a slot.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut d = TcpStream::connect(tcp_addr).await.unwrap();
    d.write_all(b"<13>after a slot freed\n").await.unwrap();
    assert_eq!(recv(&mut rx).await.text, "<13>after a slot freed");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn senders_outside_allowed_peers_are_dropped_and_idle_connections_closed() {
    let metrics = Arc::new(SourceMetrics::default());
    let local = "127.0.0.1:0".parse().unwrap();
    let cfg = SyslogConfig {
        udp: Some(local),
        tcp: Some(local),
        allowed_peers: vec!["192.0.2.0/24".parse().unwrap()],
        ..SyslogConfig::default()
    };
    let rx_side = SyslogReceiver::bind(cfg, metrics.clone()).await.unwrap();
    let (udp_addr, tcp_addr) = (rx_side.udp_addr().unwrap(), rx_side.tcp_addr().unwrap());
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rx_side.run(tx, async move {
        let _ = stopped.await;
    }));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(
            b"<34>1 2026-01-01T00:00:00Z host sshd - - - forged\n",
            udp_addr,
        )
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let _ = tcp
        .write_all(b"<34>1 2026-01-01T00:00:00Z host sshd - - - forged over tcp\n")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        rx.try_recv().is_err(),
        "nothing from a sender outside allowed_peers"
    );
    assert_eq!(metrics.snapshot().peers_refused, 2);
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    // Idle connections are closed, freeing their slot.
    let metrics = Arc::new(SourceMetrics::default());
    let cfg = SyslogConfig {
        tcp: Some(local),
        max_connections: 1,
        idle_timeout: std::time::Duration::from_millis(200),
        ..SyslogConfig::default()
    };
    let rx_side = SyslogReceiver::bind(cfg, metrics.clone()).await.unwrap();
    let tcp_addr = rx_side.tcp_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rx_side.run(tx, async move {
        let _ = stopped.await;
    }));
    let _idle = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut second = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
    second
        .write_all(b"<34>1 2026-01-01T00:00:00Z host app - - - after idle\n")
        .await
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(3), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(got.text.ends_with("after idle"), "{}", got.text);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
