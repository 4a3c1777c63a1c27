//! Pure parsing of mount options (fstab style, as config.json gives them) into
//! flags, propagation and filesystem data.

use nix::mount::MsFlags;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, each possibly with MS_REC,
    /// applied after the mount in separate calls.
    pub propagation: Vec<MsFlags>,
    /// Flags cleared explicitly (`rw`, `suid`…), so a bind remount can drop them.
    pub cleared: MsFlags,
    pub data: Vec<String>,
    pub is_bind: bool,
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut o =
        MountOptions { flags: MsFlags::empty(), propagation: Vec::new(), cleared: MsFlags::empty(), data: Vec::new(), is_bind: false };
    for opt in options {
        let (set, clear, prop) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), None),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, None),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), None),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, None),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), None),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, None),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), None),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, None),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), None),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, None),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), None),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty(), None),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), None),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, None),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, None),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), None),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, None),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), None),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), None),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, None),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), None),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME, None),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), None),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty(), None),
            "private" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_PRIVATE)),
            "rprivate" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC)),
            "shared" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SHARED)),
            "rshared" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SHARED | MsFlags::MS_REC)),
            "slave" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SLAVE)),
            "rslave" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_UNBINDABLE)),
            "runbindable" => (MsFlags::empty(), MsFlags::empty(), Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)),
            // Recognised by runc, no meaning to the kernel's mount(2).
            "defaults" | "tmpcopyup" | "idmap" | "ridmap" => (MsFlags::empty(), MsFlags::empty(), None),
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
        o.cleared.insert(clear);
        o.cleared.remove(set);
        if let Some(p) = prop {
            o.propagation.push(p);
        }
    }
    o.is_bind = o.flags.contains(MsFlags::MS_BIND);
    o
}

/// Parses a rootfsPropagation value.
pub fn propagation(name: &str) -> Option<MsFlags> {
    parse(&[name.to_string()]).propagation.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parse_flags_and_data() {
        let o = parse(&s(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(!o.is_bind);
    }

    #[test]
    fn parse_bind_ro_and_propagation() {
        let o = parse(&s(&["rbind", "ro", "rslave"]));
        assert!(o.is_bind);
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn parse_later_option_wins() {
        let o = parse(&s(&["ro", "rw"]));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn propagation_names() {
        assert_eq!(propagation("private"), Some(MsFlags::MS_PRIVATE));
        assert_eq!(propagation("rshared"), Some(MsFlags::MS_SHARED | MsFlags::MS_REC));
        assert_eq!(propagation("bogus"), None);
    }
}
