//! The file tail must not block the async runtime on file I/O.
//!
//! A FIFO sits where the tailer writes its checkpoint's temporary file (`state.json.tmp`): opening a FIFO for
//! writing blocks until a reader opens it, as a read from a stalled disk or network filesystem blocks. The
//! tailer runs on a current-thread runtime with another task beside it; if the tailer did that open on the
//! runtime thread, the runtime (and the other task, and the tailer's own following) would stop. The test
//! watches from a separate thread, then opens the FIFO's read end so a blocked writer is released either way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_ingest::source::file::{FileTail, FileTailConfig};
use sentinel_ingest::source::SourceMetrics;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

/// `O_NONBLOCK` on Linux (x86, x86-64, arm, aarch64, riscv): opening a FIFO's read end without waiting.
const O_NONBLOCK: i32 = 0o4000;

enum Seen {
    Tick,
    Line(String),
}

#[test]
fn source_file_tail_does_not_block_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "first\n").unwrap();
    let fifo = dir.path().join("state.json.tmp");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");

    let cfg = FileTailConfig {
        patterns: vec![log.to_string_lossy().into_owned()],
        state_path: Some(dir.path().join("state.json")),
        from_beginning: true,
        poll_interval: Duration::from_millis(10),
        checkpoint_lines: 1,
        checkpoint_interval: Duration::from_millis(10),
        ..FileTailConfig::default()
    };
    let metrics = Arc::new(SourceMetrics::default());
    let (seen_tx, seen) = std_mpsc::channel::<Seen>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let m = metrics.clone();
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let tail = tokio::spawn(FileTail::new(cfg, m).run(tx, async move {
                let _ = stop_rx.await;
            }));
            let ticks = seen_tx.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if ticks.send(Seen::Tick).is_err() {
                        break;
                    }
                }
            });
            while let Some(l) = rx.recv().await {
                let _ = seen_tx.send(Seen::Line(l.text));
            }
            ticker.abort();
            tail.await
        })
    });

    // Waits up to 5 s for `line`, counting the other task's ticks on the way.
    let wait_line = |want: &str| -> (bool, usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut ticks = 0;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match seen.recv_timeout(left) {
                Ok(Seen::Line(l)) if l == want => return (true, ticks),
                Ok(Seen::Tick) => ticks += 1,
                Ok(Seen::Line(_)) => {}
                Err(_) => break,
            }
        }
        (false, ticks)
    };
    let (first, _) = wait_line("first");
    // After `first` the tailer writes a checkpoint (checkpoint_lines = 1): the open of the FIFO now waits.
    std::thread::sleep(Duration::from_millis(200));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"second\n").unwrap();
    drop(f);
    let (second, ticks) = wait_line("second");
    let (third_tick, _) = {
        let got = seen.recv_timeout(Duration::from_secs(2));
        (got.is_ok(), ())
    };

    // Release any blocked writer, then remove the FIFO so later checkpoints are plain files.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    std::fs::remove_file(&fifo).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(reader);
    let _ = stop_tx.send(());
    let result = runtime.join().unwrap();

    assert!(
        first,
        "the first line never arrived: the tailer blocks the runtime"
    );
    assert!(
        second,
        "a line appended while a checkpoint write was blocked never arrived: the tailer blocks the runtime"
    );
    assert!(third_tick, "the other task on the runtime stopped running");
    assert!(
        ticks > 0,
        "the other task on the runtime did not run while the tailer waited"
    );
    result.unwrap().unwrap();
    let snap = metrics.snapshot();
    assert!(snap.lines_read >= 2);
}
