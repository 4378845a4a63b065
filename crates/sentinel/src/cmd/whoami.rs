//! `whoami` (the binary called by that name, e.g. through a symlink /usr/bin/whoami in an image that
//! has no coreutils): prints the name of the effective user from /etc/passwd, or its number when
//! /etc/passwd has no such user, like coreutils' `whoami`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;

/// Whether the binary was called as `whoami` (the last component of argv\[0\]).
pub fn called_as_whoami() -> bool {
    std::env::args_os()
        .next()
        .as_deref()
        .and_then(|a| Path::new(a).file_name())
        == Some(OsStr::new("whoami"))
}

/// Prints the effective user's name (or number) and exits 0.
pub fn run() -> ExitCode {
    let uid = rustix::process::geteuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    println!(
        "{}",
        user_name(&passwd, uid).map_or_else(|| uid.to_string(), str::to_owned)
    );
    ExitCode::SUCCESS
}

/// The name of `uid` in passwd(5) text (`name:password:uid:gid:gecos:home:shell`).
pub fn user_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next().filter(|n| !n.is_empty() && !n.starts_with('#'))?;
        let id = f.nth(1)?.trim().parse::<u32>().ok()?;
        (id == uid).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_found_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n# comment:x:5\nbroken\nsvcuser:x:1000:1000::/home/svcuser:/usr/sbin/nologin\n";
        assert_eq!(user_name(passwd, 0), Some("root"));
        assert_eq!(user_name(passwd, 1000), Some("svcuser"));
        assert_eq!(user_name(passwd, 5), None);
        assert_eq!(user_name("", 0), None);
    }
}
