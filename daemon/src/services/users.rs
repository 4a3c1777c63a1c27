//! `--user name[:group]`: names resolved against the image's /etc/passwd
//! and /etc/group, as Docker does. Pure: the caller reads the files.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in the image's /etc/passwd")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in the image's /etc/group")]
    NoGroup(String),
}

/// name or uid → (uid, primary gid) from passwd.
fn passwd_entry(passwd: &str, who: &str) -> Option<(u32, u32)> {
    passwd.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || (f[0] != who && f[2] != who) {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

fn group_id(group: &str, name: &str) -> Option<u32> {
    group.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

/// Resolves "user[:group]" to "uid:gid". A numeric uid not in passwd gets
/// gid 0; a user in passwd without a group gets its primary group.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<String, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match passwd_entry(passwd, user) {
        Some(e) => e,
        None => match user.parse::<u32>() {
            Ok(uid) => (uid, 0),
            Err(_) => return Err(UserError::NoUser(user.to_string())),
        },
    };
    let gid = match grp {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_id(group, g).ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        },
    };
    Ok(format!("{uid}:{gid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nweb:x:1000:1000::/home/web:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\nnogroup:x:65534:\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(resolve("nobody", PASSWD, GROUP).unwrap(), "65534:65534");
        assert_eq!(resolve("web:staff", PASSWD, GROUP).unwrap(), "1000:50");
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap(), "1000:1000", "a known uid takes its primary group");
        assert_eq!(resolve("4242", PASSWD, GROUP).unwrap(), "4242:0");
        assert_eq!(resolve("4242:7", PASSWD, GROUP).unwrap(), "4242:7");
        assert_eq!(resolve("ghost", PASSWD, GROUP), Err(UserError::NoUser("ghost".into())));
        assert_eq!(resolve("web:ghosts", PASSWD, GROUP), Err(UserError::NoGroup("ghosts".into())));
        assert_eq!(resolve("4242", "", "").unwrap(), "4242:0", "no passwd in the image");
    }
}
