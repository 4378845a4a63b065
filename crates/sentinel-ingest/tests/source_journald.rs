//! The journald source against a fake `journalctl` script (a real child process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_core::Timestamp;
use sentinel_ingest::source::journald::{Journald, JournaldConfig};
use sentinel_ingest::source::{RawLine, SourceMetrics};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

async fn recv(rx: &mut mpsc::Receiver<RawLine>) -> RawLine {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
}

const SCRIPT: &str = r#"
echo "$*" >> "$ARGS"
n=$(wc -l < "$ARGS")
if [ "$n" -eq 1 ]; then
  echo '{"MESSAGE":"Failed password for root from 203.0.113.9 port 22 ssh2","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_PID":"4242","__REALTIME_TIMESTAMP":"1700000000123456","__CURSOR":"s=1;i=1"}'
  echo 'not json'
  echo '{"MESSAGE":[104,105,32,255],"_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"kernel","__REALTIME_TIMESTAMP":"1700000001000000","__CURSOR":"s=1;i=2"}'
else
  echo "{\"MESSAGE\":\"run $n\",\"_HOSTNAME\":\"web1\",\"SYSLOG_IDENTIFIER\":\"fake\",\"__CURSOR\":\"s=1;i=$((n+1))\"}"
  exec sleep 30
fi
"#;

#[tokio::test]
async fn source_journald_fake_journalctl_restart_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("journalctl.sh");
    let args = dir.path().join("args");
    std::fs::write(&script, SCRIPT.replace("$ARGS", &args.to_string_lossy())).unwrap();
    let state = dir.path().join("journald.json");
    let metrics = Arc::new(SourceMetrics::default());
    let cfg = JournaldConfig {
        command: vec![
            "sh".into(),
            script.to_string_lossy().into_owned(),
            "-o".into(),
            "json".into(),
        ],
        state_path: Some(state.clone()),
        backoff_initial: Duration::from_millis(20),
        ..JournaldConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Journald::new(cfg, metrics.clone()).run(tx, async move {
        let _ = stopped.await;
    }));

    let l = recv(&mut rx).await;
    assert_eq!(
        l.text,
        "web1 sshd[4242]: Failed password for root from 203.0.113.9 port 22 ssh2"
    );
    assert_eq!(l.ts_hint, Some(Timestamp::from_millis(1_700_000_000_123)));
    assert_eq!(&*l.origin, "journald");
    let l = recv(&mut rx).await;
    assert_eq!(l.text, "web1 kernel: hi \u{fffd}");
    assert_eq!(l.ts_hint, Some(Timestamp::from_millis(1_700_000_001_000)));

    // The script exited; it is restarted after the last cursor.
    let l = recv(&mut rx).await;
    assert_eq!(l.text, "web1 fake: run 2");
    assert_eq!(l.ts_hint, None);
    let runs = std::fs::read_to_string(&args).unwrap();
    assert_eq!(runs.lines().nth(1), Some("-o json --after-cursor=s=1;i=2"));
    let s = metrics.snapshot();
    assert_eq!((s.restarts, s.errors, s.lines_read), (1, 1, 3));

    // Shutdown kills the sleeping child and checkpoints the cursor.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        r#"{"cursor":"s=1;i=3"}"#
    );
}

#[tokio::test]
async fn source_journald_counts_cut_and_invalid_utf8_lines() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("journalctl.sh");
    // A line over the 64-byte limit (cut, so no longer JSON: an error too), then one with a byte that is not
    // UTF-8 (replaced, the entry kept).
    std::fs::write(
        &script,
        format!(
            "printf '%s\\n' '{{\"MESSAGE\":\"{}\"}}'\nprintf '{{\"MESSAGE\":\"caf\\377\"}}\\n'\nexec sleep 30\n",
            "x".repeat(100)
        ),
    )
    .unwrap();
    let metrics = Arc::new(SourceMetrics::default());
    let cfg = JournaldConfig {
        command: vec!["sh".into(), script.to_string_lossy().into_owned()],
        max_line_bytes: 64,
        ..JournaldConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Journald::new(cfg, metrics.clone()).run(tx, async move {
        let _ = stopped.await;
    }));
    let l = recv(&mut rx).await;
    assert_eq!(l.text, "-: caf\u{fffd}");
    let s = metrics.snapshot();
    assert_eq!(
        (
            s.lines_read,
            s.lines_too_long,
            s.lines_invalid_utf8,
            s.errors
        ),
        (1, 1, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.bytes_read, 100 + 15 + 19);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
