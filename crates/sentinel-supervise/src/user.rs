//! Resolves the `user:` of a process child (a name from `/etc/passwd`, or a numeric uid) to the uid
//! and gid it runs as. Reads the file only; never changes anything.

use std::path::Path;

/// A user a child runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// Resolves `user` against the passwd file at `passwd` (`/etc/passwd`): a name, or a numeric uid
/// (whose passwd entry gives the group; without one, the group is the uid).
pub fn resolve(user: &str, passwd: &Path) -> Result<RunAs, String> {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    let entries = text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some((f[0], f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?))
    });
    if let Ok(uid) = user.parse::<u32>() {
        let gid = entries
            .into_iter()
            .find(|(_, u, _)| *u == uid)
            .map(|(_, _, g)| g)
            .unwrap_or(uid);
        return Ok(RunAs { uid, gid });
    }
    entries
        .into_iter()
        .find(|(n, _, _)| *n == user)
        .map(|(_, uid, gid)| RunAs { uid, gid })
        .ok_or_else(|| format!("no user {user:?} in {}", passwd.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0:root:/root:/bin/sh\nbad line\nwww:x:33:34::/var/www:/bin/false\n",
        )
        .unwrap();
        assert_eq!(resolve("www", &p), Ok(RunAs { uid: 33, gid: 34 }));
        assert_eq!(resolve("33", &p), Ok(RunAs { uid: 33, gid: 34 }));
        assert_eq!(
            resolve("4242", &p),
            Ok(RunAs {
                uid: 4242,
                gid: 4242
            })
        );
        assert!(resolve("nobody-here", &p).unwrap_err().contains("no user"));
    }
}
