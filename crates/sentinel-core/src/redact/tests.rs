use super::*;
use serde_json::json;

fn text(s: &str) -> String {
    Redactor::default().redact_text(s).into_owned()
}

fn count(s: &str) -> usize {
    Redactor::default().redact_text_counted(s).1
}

#[test]
fn masks_at_any_depth() {
    let r = Redactor::from_list("session_ref");
    let mut v = json!({
        "user": "alice",
        "Password": "hunter2",
        "nested": {"list": [{"api-key": "k1"}, {"ok": 1, "SESSION_REF": "s"}]},
        "headers": {"Authorization": "Bearer xyzxyzxyz", "X-Api-Key": "y"}
    });
    assert_eq!(r.redact(&mut v), 5);
    let t = v.to_string();
    for secret in ["hunter2", "k1", "xyzxyzxyz", "\"y\"", "\"s\""] {
        assert!(!t.contains(secret), "{secret} leaked in {t}");
    }
    assert_eq!(v["headers"]["Authorization"], "Bearer ***");
    assert_eq!(v["user"], "alice");
    assert_eq!(v["nested"]["list"][1]["ok"], 1);
    // Idempotent: a second pass finds nothing.
    assert_eq!(r.redact(&mut v), 0);
}

#[test]
fn broader_key_list() {
    let r = Redactor::default();
    for k in [
        "pass",
        "pwd",
        "db_pw",
        "passphrase",
        "auth",
        "basic_auth",
        "credentials",
        "aws_credential",
        "access_key",
        "accessKey",
        "AWS_SECRET_ACCESS_KEY",
        "SecretAccessKey",
        "private_key",
        "privateKey",
        "private_key_id",
        "secret_key",
        "client_secret",
        "session",
        "sessionId",
        "PHPSESSID",
        "session_id",
        "token",
        "refresh_token",
        "accessToken",
        "csrftoken",
        "X-Auth-Token",
        "Proxy-Authorization",
        "Set-Cookie",
        "otp",
        "pin",
        "jwt",
        "x-amz-security-token",
    ] {
        assert!(r.is_secret_key(k), "{k} should be secret");
    }
}

#[test]
fn innocent_keys_are_left_alone() {
    let r = Redactor::default();
    for k in [
        "author",
        "authority",
        "authenticated",
        "bypass",
        "passenger",
        "compass",
        "max_tokens",
        "prompt_tokens",
        "tokenizer",
        "token_count",
        "token_type",
        "auth_method",
        "session_ttl",
        "password_policy",
        "user",
        "path",
        "user_agent",
        "spinner",
        "mapping",
        "keyboard",
        "primary_key",
        "cache_key",
    ] {
        assert!(!r.is_secret_key(k), "{k} should not be secret");
    }
    let mut v = json!({"author": "ann", "authenticated": true, "auth": true, "session": null});
    assert_eq!(r.redact(&mut v), 0, "{v}");
}

#[test]
fn numbers_and_containers_under_secret_keys_are_masked() {
    let mut v =
        json!({"pin": 1234, "credentials": {"user": "u", "x": "y"}, "passwords": ["a", "b"]});
    assert_eq!(Redactor::default().redact(&mut v), 3);
    assert_eq!(
        v,
        json!({"pin": "***", "credentials": "***", "passwords": "***"})
    );
}

#[test]
fn free_text_pairs_are_masked() {
    assert_eq!(
        text("login failed user=bob password=hunter2 from 203.0.113.7"),
        "login failed user=bob password=*** from 203.0.113.7"
    );
    assert_eq!(
        text(r#"GET /cb?token=abc123&x=1 "Authorization: Bearer eyJhbGc" ok"#),
        r#"GET /cb?token=***&x=1 "Authorization: Bearer ***" ok"#
    );
    assert_eq!(text("{\"api_key\": \"k-1\", "), "{\"api_key\": \"***\", ");
    assert_eq!(text("pwd: s3cr3t!"), "pwd: ***");
    assert_eq!(text("passphrase = 'two words'"), "passphrase = '***'");
    assert_eq!(
        text("--db-password=\"a b c\" next"),
        "--db-password=\"***\" next"
    );
    assert_eq!(text(":auth_token => abc"), ":auth_token => ***");
    assert_eq!(
        text("https://h/x?user=a&access_token=AAA&password=BBB"),
        "https://h/x?user=a&access_token=***&password=***"
    );
    // After `:` (a header, a YAML value) the value runs to the end of its line: a password with a
    // space, or a cookie header's other cookies, are not left half shown.
    assert_eq!(text("X-Api-Key: k123 more\nnext"), "X-Api-Key: ***\nnext");
    assert_eq!(text("Cookie: sessionid=abc; csrftoken=def"), "Cookie: ***");
    assert_eq!(text("Cookie: theme=dark; sid=abc"), "Cookie: ***");
    assert_eq!(text("password: a b;c d"), "password: ***");
    // JSON escaped inside a log line.
    assert_eq!(
        text(r#"body={\"password\":\"hunter2\",\"n\":1}"#),
        r#"body={\"password\":\"***\",\"n\":1}"#
    );
    assert_eq!(count("a password=x token=y"), 2);
    assert_eq!(text("password==s3cret:x/y?z#1"), "password=***");
    assert_eq!(
        text("GET /login?password=p@ss:w0rd!#x&next=/"),
        "GET /login?password=***&next=/"
    );
}

#[test]
fn a_shape_inside_another_is_still_masked() {
    let out = text("Authorization: Bearer -----BEGIN PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n-----END PRIVATE KEY-----");
    assert!(!out.contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"), "{out}");
}

#[test]
fn paths_and_look_alike_words_are_left_alone() {
    for t in [
        "author=jane passenger=joe tokens_used=5 /reset-password?id=3",
        "GET /reset-password HTTP/1.1",
        "GET /api/password-reset?email=a@b.c HTTP/1.1",
        "path=/user/password/edit",
        "Basic usage: see the manual",
        "Basic authentication failed for bob",
        "token_count=12 bypass=1",
    ] {
        assert_eq!(text(t), t);
    }
    let mut v = serde_json::json!({"tags": ["auth", "failure"], "pairs": [["user", "bob"]]});
    let before = v.clone();
    assert_eq!(Redactor::default().redact(&mut v), 0);
    assert_eq!(v, before);
}

#[test]
fn clean_text_is_not_copied() {
    let r = Redactor::default();
    for plain in [
        "Failed password for root from 203.0.113.7 port 22 ssh2",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7",
        "pam_unix(sshd:session): session opened for user root",
        "GET /index.html HTTP/1.1 200 Mozilla/5.0",
        "author=ann bypass=1 compass: north",
        "see https://example.com/docs and http://h/x",
        "the bearer of bad news",
        "Asia/Tokyo aws region us-east-1",
        "ü secret ü",
    ] {
        assert!(
            matches!(r.redact_text(plain), Cow::Borrowed(_)),
            "{plain} -> {}",
            r.redact_text(plain)
        );
    }
    assert_eq!(text("ü secret=x ü"), "ü secret=*** ü");
}

#[test]
fn bearer_and_basic_credentials() {
    assert_eq!(
        text("curl -H 'Authorization: Basic dXNlcjpwYXNz' x"),
        "curl -H 'Authorization: Basic ***' x"
    );
    assert_eq!(
        text("sent Bearer abcDEF123456789 to upstream"),
        "sent Bearer *** to upstream"
    );
    assert_eq!(
        text("authorization=Bearer%20x"),
        "authorization=***",
        "no space: the whole value goes"
    );
    assert_eq!(text("Bearer ***"), "Bearer ***");
}

#[test]
fn url_userinfo() {
    assert_eq!(
        text("connecting to postgres://app:s3cret@db:5432/x"),
        "connecting to postgres://app:***@db:5432/x"
    );
    assert_eq!(
        text("clone https://ghtoken123@github.com/o/r"),
        "clone https://***@github.com/o/r"
    );
    assert_eq!(text("https://example.com/a@b"), "https://example.com/a@b");
}

#[test]
fn jwt_pem_and_cloud_shapes() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_eq!(text(&format!("tok {jwt} end")), "tok *** end");
    let pem =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----";
    assert_eq!(
        text(&format!("key: {pem}")),
        "key: -----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----"
    );
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    assert_eq!(text(cert), cert, "certificates are public");
    assert_eq!(
        text("id AKIAIOSFODNN7EXAMPLE, ASIAXXXXXXXXXXXXXXXX."),
        "id AKIA***, ASIA***."
    );
    assert_eq!(text("AKIAIOSFODNN7EXAMPLEX"), "AKIAIOSFODNN7EXAMPLEX");
    assert_eq!(
        text("AWS secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ok"),
        "AWS secret *** ok"
    );
    assert_eq!(
        text("key=AIzaSyA1234567890abcdefghijklmnopqrstu"),
        "key=AIza***"
    );
    assert_eq!(
        text("ghp_abcdefghijklmnopqrstuvwxyz0123456789 github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
        "ghp_*** github_pat_***"
    );
    assert_eq!(
        text("slack xoxb-123456789012-abcdefghijkl and xoxp-1-2-3-abcdef"),
        "slack xoxb-*** and xoxp-***"
    );
    assert_eq!(
        text("post to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX now"),
        "post to https://hooks.slack.com/services/*** now"
    );
}

#[test]
fn json_inside_strings() {
    let r = Redactor::default();
    let mut v =
        json!({"body": "{\"password\":\"hunter2\",\"inner\":\"{\\\"token\\\":\\\"t1\\\"}\"}"});
    assert_eq!(r.redact(&mut v), 2);
    let t = v.to_string();
    assert!(!t.contains("hunter2") && !t.contains("t1"), "{t}");
    // A GCP service-account file sent as a string.
    let sa = json!({"type": "service_account", "private_key_id": "abc123", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n", "client_email": "x@y.iam.gserviceaccount.com"}).to_string();
    let (masked, n) = r.redact_text_counted(&sa);
    assert_eq!(n, 2);
    assert!(
        !masked.contains("MIIEvQ") && !masked.contains("abc123"),
        "{masked}"
    );
    assert!(masked.contains("service_account"));
}

#[test]
fn custom_keys_are_normalised() {
    let r = Redactor::from_list(" Private-Note , ,");
    assert!(r.is_secret_key("private_note"));
    assert!(r.is_secret_key("my-PRIVATE-NOTE"));
    assert!(r.is_secret_key("privateNote"));
    assert!(!r.is_secret_key("note"));
    assert_eq!(r.redact_text("a privateNote=x"), "a privateNote=***");
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = c.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - c.len()));
            for i in 0..=c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        while !out.len().is_multiple_of(4) {
            out.push('=');
        }
        out
    }

    proptest! {
        /// Never panics on any text, never grows a secret, and is idempotent.
        #[test]
        fn any_text(s in "\\PC{0,80}", k in prop::sample::select(vec!["password=", "Bearer ", "https://u:", "eyJ", "AKIA", "-----BEGIN PRIVATE KEY-----", "{\"token\":"])) {
            let r = Redactor::default();
            let input = format!("{k}{s}");
            let once = r.redact_text(&input).into_owned();
            let twice = r.redact_text(&once).into_owned();
            prop_assert_eq!(&once, &twice);
        }

        /// Each shape, with a random body, between random text: the body never survives.
        #[test]
        fn shapes_in_any_text(
            pre in "\\PC{0,20}",
            post in "\\PC{0,20}",
            body in "[A-Za-z0-9]{36,40}",
            shape in 0usize..10,
        ) {
            let r = Redactor::default();
            let (secret, raw) = match shape {
                0 => (format!("Authorization: Bearer {body}"), body.clone()),
                1 => (format!("eyJ{}.eyJ{}.{}", &body[..12], &body[12..24], &body[24..]), body[..12].to_owned()),
                2 => (format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"), body.clone()),
                3 => (format!("AKIA{}", body[..16].to_ascii_uppercase()), body[..16].to_ascii_uppercase()),
                4 => (format!("AIza{}", &body[..35]), body[..35].to_owned()),
                5 => (format!("ghp_{}", &body[..36]), body[..36].to_owned()),
                6 => (format!("xoxb-{body}"), body.clone()),
                7 => (format!("https://hooks.slack.com/services/{body}"), body.clone()),
                8 => (format!("https://u:{body}@h.example/"), body.clone()),
                _ => (format!("{{\"client_secret\": \"{body}\"}}"), body.clone()),
            };
            let input = format!("{pre} {secret} {post}");
            let out = r.redact_text(&input);
            prop_assert!(!out.contains(&raw), "{} -> {}", input, out);
        }

        /// Encoded, escaped, quoted, bracketed, folded and structured forms of a secret key and its
        /// value: the value never survives.
        #[test]
        fn odd_forms_never_survive(
            v in "[A-Za-z0-9]{12,30}",
            key in prop::sample::select(vec!["password", "PASSWORD", "Password", "api_key", "token", "client_secret", "passwd"]),
            // Printable text without quotes (a quoted empty value ends the value, by design).
            pre in "[A-Za-z0-9 ,;:=/.()\\[\\]{}<>-]{0,12}",
        ) {
            let r = Redactor::default();
            let first = key.chars().next().unwrap_or('p') as u32;
            let texts = [
                format!("q=1&{key}%3D{v}&x=2"),
                format!("user%3Dbob%26{key}%3d{v}%26next%3D1"),
                format!("{key}%3A%20{v}"),
                format!("user[{key}]={v}"),
                format!("user%5B{key}%5D={v}"),
                format!("{{\"\\u{first:04x}{}\":\"{v}\"}}", &key[1..]),
                format!("{pre} Basic {}", b64(&format!("bob:{v}"))),
                format!("[{{\"name\":\"{key}\",\"value\":\"{v}\"}}]"),
                format!("{key}: {pre} {v} tail"),
                format!("{key}=\"a b;{v}\""),
                format!("{key}=`{v}`"),
                format!("{{\\\\\\\"{key}\\\\\\\":\\\\\\\"{v}\\\\\\\"}}"),
                format!("{key}:\n  {v}\nnext: 1"),
                format!("Authorization: Digest username=\"bob\", response=\"{v}\""),
            ];
            for t in &texts {
                let out = r.redact_text(t);
                prop_assert!(!out.contains(&v), "{} -> {}", t, out);
            }
            let values = [
                json!({"headers": [["Host", "h"], [key, v]]}),
                json!({"args": ["run", format!("--{key}"), v]}),
                json!({"form": [{"name": key, "value": v}]}),
                json!({"body": format!("{{\"\\u{first:04x}{}\":\"{v}\"}}", &key[1..])}),
            ];
            for mut val in values {
                let before = val.to_string();
                r.redact(&mut val);
                prop_assert!(!val.to_string().contains(&v), "{} -> {}", before, val);
            }
        }

        #[test]
        fn secret_values_never_survive(v in "[A-Za-z0-9]{12,30}") {
            let r = Redactor::default();
            for t in [format!("password={v}"), format!("x token: \"{v}\" y"), format!("Bearer {v}"), format!("https://u:{v}@h/")] {
                let out = r.redact_text(&t);
                prop_assert!(!out.contains(&v), "{} -> {}", t, out);
            }
        }
    }
}
