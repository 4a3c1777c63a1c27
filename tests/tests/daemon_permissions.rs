//! What rindd keeps is root's: an unprivileged user reads no secret (the
//! environment in meta.db and config.json, the output in the logs) and
//! lists no directory of its root or state trees. Containers still get the
//! usual umask, and the API socket stays 0660 for its group.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rind_tests::daemon::Daemon;
use rind_tests::*;

/// Runs `args` as the user nobody.
fn as_nobody(args: &[&str], path: &Path) -> Output {
    Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups"]).args(args).arg(path).output().unwrap()
}

#[test]
fn an_unprivileged_user_reads_no_secret_and_lists_no_directory() {
    let d = Daemon::start();
    // As /var/lib and /run are: the test's private tempdir must not be what keeps nobody out.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d.load_busybox();
    let id = d.ok(&["run", "-d", "-e", "DB_PASSWORD=hunter2", "busybox", "sh", "-c", "echo the-output; umask; sleep 1000"]);
    let id = id.trim();
    d.wait_for("the container's output", Duration::from_secs(10), || d.ok(&["logs", id]).contains("0022"));
    assert_eq!(d.ok(&["logs", id]), "the-output\n0022\n", "containers keep the default umask");
    let (root, state) = (d.root(), d.state());
    let config = state.join("containers").join(id).join("config.json");
    assert!(std::fs::read_to_string(&config).unwrap().contains("DB_PASSWORD=hunter2"), "the secret is where the test looks");
    let files = [root.join("meta.db"), root.join("meta.db-wal"), root.join("containers").join(id).join(format!("{id}.log")), config];
    for f in &files {
        assert!(f.exists(), "{}", f.display());
        let out = as_nobody(&["cat"], f);
        assert!(!out.status.success() && out.stdout.is_empty(), "nobody read {}: {}", f.display(), stdout(&out));
    }
    let dirs = [
        root.clone(),
        root.join("containers"),
        root.join("containers").join(id),
        root.join("content"),
        root.join("snapshots"),
        state.clone(),
        state.join("containers"),
        state.join("containers").join(id),
        state.join("s"),
        state.join("runtime"),
    ];
    for dir in &dirs {
        let out = as_nobody(&["ls"], dir);
        assert!(!out.status.success() && out.stdout.is_empty(), "nobody listed {}: {}", dir.display(), stdout(&out));
    }
    for f in [root.join("meta.db"), root.join("meta.db-wal"), root.join("containers").join(id).join(format!("{id}.log"))] {
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    assert_eq!(std::fs::metadata(root.join("containers").join(id)).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(state.join("rind.sock")).unwrap().permissions().mode() & 0o777, 0o660, "the API socket");
    d.ok(&["rm", "-f", id]);
}
