//! A real daemon with `api.tls` (a self-signed certificate made by the test): it serves https only
//! (plaintext is refused and counted), the dashboard's session cookie is `Secure` and `__Host-`
//! without `api.ui.secure_cookie`, and the `sentinel` CLI reaches it over https, trusting
//! `api.tls.cert`, by address and by name. `sentinel config check` refuses a key others may read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::command;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A self-signed certificate for `localhost` and `127.0.0.1`, and `sentinel.yml` naming it.
fn setup(dir: &Path) -> String {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join("sentinel.yml"),
        format!(
            "api:\n  tls:\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    ck.cert.pem()
}

fn https(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The daemon's child process, killed when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = command(dir)
        .args(args)
        .args(["--data-dir", "data"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_https_and_the_cli_talks_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = setup(dir.path());
    let _daemon = Child(
        command(dir.path())
            .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr_file = dir.path().join("data/api.addr");
    let http = https(&cert_pem);
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(s) = std::fs::read_to_string(&addr_file) {
            if s.ends_with('\n') {
                break s.trim().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no api.addr");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://127.0.0.1:{port}");
    loop {
        if let Ok(r) = http.get(format!("{base}/ready")).send().await {
            if r.status() == 200 {
                assert_eq!(
                    r.headers()
                        .get("strict-transport-security")
                        .map(|v| v.to_str().unwrap()),
                    Some("max-age=31536000")
                );
                break;
            }
        }
        assert!(Instant::now() < deadline, "never ready over https");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Plain HTTP gets no answer, and is counted.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    let key = std::fs::read_to_string(dir.path().join("data/admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let metrics = http
        .get(format!("{base}/metrics"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sentinel_api_tls_handshake_failures_total{reason=\"not_tls\"} 1"),
        "{metrics}"
    );

    // The dashboard's session cookie is Secure without api.ui.secure_cookie.
    let form = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let pair = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|v| v.starts_with("sentinel_login_csrf="))
        .expect("a login token cookie");
    let token = pair.split_once('=').unwrap().1.to_owned();
    let r = http
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &pair)
        .header("origin", &base)
        .header("sec-fetch-site", "same-origin")
        .body(format!("key={key}&csrf={token}&next=%2Fui%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-sentinel_session="))
        .expect("a __Host- session cookie");
    assert!(session.contains("; Secure"), "{session}");

    // The CLI over TCP (not the socket): https to the address, then by a name the certificate holds.
    for url in [base.clone(), format!("https://localhost:{port}")] {
        let (code, out, err) = cli(dir.path(), &["keys", "list", "--json", "--url", &url]);
        assert_eq!(code, Some(0), "{url}: {err}");
        let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            keys.as_array().is_some_and(|a| !a.is_empty()),
            "{url}: {out}"
        );
    }
    // By default (no socket in the way) it finds the address and the scheme by itself.
    std::fs::remove_file(dir.path().join("data/api.sock")).unwrap();
    let (code, out, err) = cli(dir.path(), &["keys", "list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.trim_start().starts_with('['), "{out}");
    // `healthcheck` too.
    let (code, _, err) = cli(dir.path(), &["healthcheck"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn config_check_refuses_a_key_others_may_read() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (code, _, err) = cli(dir.path(), &["config", "check"]);
    assert_eq!(code, Some(0), "{err}");
    std::fs::set_permissions(
        dir.path().join("tls.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, out, err) = cli(dir.path(), &["config", "check"]);
    assert_eq!(code, Some(2), "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("api.tls.key"), "{text}");
    assert!(text.contains("readable by group or others"), "{text}");
}
