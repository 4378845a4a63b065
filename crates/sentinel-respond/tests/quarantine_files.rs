//! The quarantine actuator against real files: move in, restore byte-identical, refuse dangerous paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{ActError, ActionKind, ActionSpec, Actuator, Subject};
use sentinel_respond::actuators::quarantine::{Manifest, QuarantineConfig, QuarantineFile};
use sentinel_respond::PlanOnly;
use sha2::{Digest, Sha256};
use std::fs::{self, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

fn spec(p: &Path) -> ActionSpec {
    ActionSpec {
        kind: ActionKind::QuarantineFile,
        subject: Subject::File(p.display().to_string()),
        ttl_secs: 60,
        params: sentinel_core::ActionParams::QuarantineFile,
    }
}

struct Setup {
    _root: tempfile::TempDir,
    _qparent: tempfile::TempDir,
    root: std::path::PathBuf,
    act: QuarantineFile,
}

fn setup_in(root_base: &Path) -> Setup {
    let root = tempfile::tempdir_in(root_base).unwrap();
    let qparent = tempfile::tempdir().unwrap();
    let cfg = QuarantineConfig {
        dir: qparent.path().join("q"),
        roots: vec![root.path().to_path_buf()],
    };
    let act = QuarantineFile::new(cfg).unwrap();
    Setup {
        root: fs::canonicalize(root.path()).unwrap(),
        _root: root,
        _qparent: qparent,
        act,
    }
}

const CONTENT: &[u8] = b"<?php system($_GET['c']); ?>\n\x00\x01binary tail\xff";

fn plant(p: &Path) -> (u32, u32, i64) {
    fs::write(p, CONTENT).unwrap();
    std::os::unix::fs::chown(p, Some(1234), Some(2345)).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o640)).unwrap();
    let mtime = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(FileTimes::new().set_modified(mtime))
        .unwrap();
    (1234, 2345, 1_600_000_000)
}

async fn roundtrip(root_base: &Path) {
    let s = setup_in(root_base);
    let qdir = s.act.dir().to_path_buf();
    let qmeta = fs::metadata(&qdir).unwrap();
    assert_eq!(qmeta.mode() & 0o7777, 0o700);
    assert_eq!((qmeta.uid(), qmeta.gid()), (0, 0));

    let sub = s.root.join("www");
    fs::create_dir(&sub).unwrap();
    let file = sub.join("shell.php");
    let (uid, gid, mtime) = plant(&file);

    // Observe mode: the planner (nothing created, same configuration) behind PlanOnly.
    let observe = PlanOnly::new(Box::new(QuarantineFile::planner(QuarantineConfig {
        dir: qdir.clone(),
        roots: vec![s.root.clone()],
    })));
    let preview = observe.plan(&spec(&file)).await.unwrap();
    assert!(preview.operations.iter().any(|o| o.contains("rename")));
    assert!(preview.operations[0].contains(&file.display().to_string()));
    assert!(observe
        .apply(&spec(&file))
        .await
        .unwrap_err()
        .to_string()
        .contains("no enforcing actuator"));
    assert!(file.exists(), "plan must change nothing");

    let applied = s.act.apply(&spec(&file)).await.unwrap();
    assert_eq!(
        applied.operations, preview.operations,
        "enforce ran exactly what observe recorded"
    );
    assert!(!file.exists(), "moved away from its path");
    let m: Manifest = serde_json::from_value(applied.token.clone()).unwrap();
    assert_eq!(m.original_path, file);
    assert_eq!(
        (m.mode, m.uid, m.gid, m.size),
        (0o640, uid, gid, CONTENT.len() as u64)
    );
    assert_eq!((m.mtime_secs, m.mtime_nanos), (mtime, 123_456_789));
    assert_eq!(m.sha256, hex::encode(Sha256::digest(CONTENT)));
    assert_eq!(m.stored_as, qdir.join(&m.id));

    let stored = fs::metadata(&m.stored_as).unwrap();
    assert_eq!(stored.mode() & 0o7777, 0o600);
    assert_eq!((stored.uid(), stored.gid()), (0, 0));
    assert_eq!(fs::read(&m.stored_as).unwrap(), CONTENT);
    let on_disk: Manifest =
        serde_json::from_slice(&fs::read(qdir.join(format!("{}.json", m.id))).unwrap()).unwrap();
    assert_eq!(on_disk, m);

    // Observe reports what is in place (the same token), not the operations that put it there.
    let seen = s.act.observe().await.unwrap();
    let mut found = applied.clone();
    found.operations.clear();
    assert_eq!(seen, vec![found]);

    // Revert after a "restart": a new actuator with the same config and only the serialised token.
    let again = QuarantineFile::new(QuarantineConfig {
        dir: qdir.clone(),
        roots: vec![s.root.clone()],
    })
    .unwrap();
    let token = serde_json::from_str(&serde_json::to_string(&applied).unwrap()).unwrap();
    again.revert(&token).await.unwrap();
    assert_eq!(fs::read(&file).unwrap(), CONTENT);
    let back = fs::metadata(&file).unwrap();
    assert_eq!(back.mode() & 0o7777, 0o640);
    assert_eq!((back.uid(), back.gid()), (uid, gid));
    assert_eq!((back.mtime(), back.mtime_nsec()), (mtime, 123_456_789));
    assert!(!m.stored_as.exists());
    assert!(again.observe().await.unwrap().is_empty());

    // Double revert: the identical file is there already.
    again.revert(&token).await.unwrap();
    assert_eq!(fs::read(&file).unwrap(), CONTENT);
}

#[tokio::test]
async fn quarantine_and_restore_on_the_same_file_system() {
    roundtrip(&std::env::temp_dir()).await;
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn quarantine_and_restore_across_file_systems() {
    // A tmpfs root: the move is a copy + fsync + unlink, the restore a copy + link.
    let mnt = Tmpfs(tempfile::tempdir().unwrap());
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "sentinel-test"])
        .arg(mnt.0.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("cannot mount a tmpfs here; skipping the cross-device case");
        return;
    }
    roundtrip(mnt.0.path()).await;
}

fn refusal(r: Result<impl std::fmt::Debug, ActError>) -> String {
    match r {
        Err(ActError::Refused(s)) => s,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn dangerous_paths_are_refused_naming_the_rule() {
    let s = setup_in(&std::env::temp_dir());
    let outside = tempfile::tempdir().unwrap();
    let outside_file = outside.path().join("passwd-copy");
    fs::write(&outside_file, b"x").unwrap();
    let link = s.root.join("link");
    std::os::unix::fs::symlink(&outside_file, &link).unwrap();
    let dir = s.root.join("adir");
    fs::create_dir(&dir).unwrap();

    let cases: [(&Path, &str); 7] = [
        (Path::new("/"), "root directory"),
        (Path::new("/etc"), "top-level system directory"),
        (Path::new("/home"), "home root"),
        (Path::new("/proc/self/status"), "/proc"),
        (&outside_file, "outside every quarantine root"),
        (&link, "symbolic link"),
        (&dir, "directory (rule: regular files only)"),
    ];
    for (p, rule) in cases {
        let msg = refusal(s.act.apply(&spec(p)).await);
        assert!(msg.contains(rule), "{}: {msg}", p.display());
        let msg = refusal(s.act.plan(&spec(p)).await);
        assert!(msg.contains(rule), "plan {}: {msg}", p.display());
    }
    assert!(outside_file.exists() && link.exists() && dir.is_dir());
    assert!(s.act.observe().await.unwrap().is_empty());
}

#[tokio::test]
async fn revert_never_overwrites_a_different_file() {
    let s = setup_in(&std::env::temp_dir());
    let file = s.root.join("dropper.sh");
    plant(&file);
    let applied = s.act.apply(&spec(&file)).await.unwrap();
    let m: Manifest = serde_json::from_value(applied.token.clone()).unwrap();

    fs::write(&file, b"the admin's new file").unwrap();
    let msg = refusal(s.act.revert(&applied).await);
    assert!(msg.contains("different file now occupies"), "{msg}");
    assert_eq!(fs::read(&file).unwrap(), b"the admin's new file");
    assert_eq!(fs::read(&m.stored_as).unwrap(), CONTENT, "nothing lost");
    assert_eq!(s.act.observe().await.unwrap().len(), 1);

    // Once the path is free again the restore goes through.
    fs::remove_file(&file).unwrap();
    s.act.revert(&applied).await.unwrap();
    assert_eq!(fs::read(&file).unwrap(), CONTENT);
}

#[tokio::test]
async fn tampered_tokens_cannot_point_outside_the_quarantine() {
    let s = setup_in(&std::env::temp_dir());
    let file = s.root.join("x.bin");
    plant(&file);
    let mut applied = s.act.apply(&spec(&file)).await.unwrap();
    applied.token["stored_as"] = serde_json::json!("/etc/shadow");
    assert!(matches!(
        s.act.revert(&applied).await,
        Err(ActError::BadToken(_))
    ));
}

#[test]
fn config_validation_reports_every_problem() {
    let errs = QuarantineConfig {
        dir: "relative/q".into(),
        roots: vec!["/".into(), "srv".into()],
    }
    .validate()
    .unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
}

/// With no quarantine roots configured, the planner refuses every file, naming the setting; paths that
/// are not absolute and normalised are refused before the file system is looked at.
#[tokio::test]
async fn planner_without_roots_or_with_odd_paths_refuses() {
    let q = tempfile::tempdir().unwrap();
    let none = QuarantineFile::planner(QuarantineConfig {
        dir: q.path().join("q"),
        roots: Vec::new(),
    });
    match none.plan(&spec(Path::new("/root/.bashrc"))).await {
        Err(ActError::Refused(msg)) => assert!(msg.contains("respond.quarantine_roots"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!q.path().join("q").exists(), "the planner creates nothing");
    let some = QuarantineFile::planner(QuarantineConfig {
        dir: q.path().join("q"),
        roots: vec![q.path().to_path_buf()],
    });
    for bad in ["relative/x", "/tmp/../root/.bashrc", "/tmp/./x", "/tmp//x"] {
        match some.plan(&spec(Path::new(bad))).await {
            Err(ActError::Refused(msg)) => assert!(msg.starts_with("subject: "), "{bad}: {msg}"),
            other => panic!("{bad}: expected a refusal, got {other:?}"),
        }
    }
}
