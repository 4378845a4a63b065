//! Property test: whatever the line, the sshd filter fixture answers without panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sentinel_ingest::fail2ban::{Fail2banFilter, FilterOptions};
use sentinel_ingest::{LineParser, ParseCtx};
use std::path::PathBuf;
use std::sync::OnceLock;

fn sshd() -> &'static Fail2banFilter {
    static F: OnceLock<Fail2banFilter> = OnceLock::new();
    F.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fail2ban/filter.d/sshd.conf");
        let opts = FilterOptions {
            mode: Some("aggressive".into()),
            vars: Vec::new(),
        };
        Fail2banFilter::load(&path, &opts).unwrap()
    })
}

proptest! {
    #[test]
    fn arbitrary_lines_never_panic(line in any::<String>()) {
        let _ = sshd().parse(&line, &ParseCtx::default());
    }

    #[test]
    fn sshd_shaped_lines_never_panic(
        date in "(Jan|Feb|Dec|Xyz) {1,2}[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
        body in "(Failed password for |Invalid user |Connection closed by |pam_unix\\(sshd:auth\\): )?.{0,40}",
        host in "([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9a-f:]{2,20}|[a-z.]{1,12}",
        tail in ".{0,20}",
    ) {
        let line = format!("{date} web1 sshd[1]: {body} from {host}{tail}");
        let _ = sshd().parse(&line, &ParseCtx::default());
    }
}
