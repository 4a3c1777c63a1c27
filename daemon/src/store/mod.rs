//! rindd's metadata in SQLite (WAL): what the user asked for.
//!
//! ```text
//! meta.db
//!   schema_version(version)                      one row; migrations below, in order
//!   images(name PK, config, layers JSON, created)
//!   containers(id PK, name UNIQUE, image, spec JSON, desired, restart_policy,
//!              bundle, shim_address, created, exit_code, finished_at, exit_reason,
//!              config JSON, status, pid, started_at, restart_count, oom_killed)
//! ```
//! `desired` is what the user asked for; `status`, `pid`, the exit columns
//! and `oom_killed` cache what the shims last reported (the shims own the truth).
//! meta.db and its WAL and SHM files are 0600.
//! Every change is one transaction.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata store {path}: make it readable by root only")]
    Mode {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata store {path}: schema version {found} is newer than this rindd ({known})")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("metadata store: bad JSON in {what}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Makes the database and its WAL and shared-memory files readable by root
/// only (they hold the containers' environment): SQLite creates the WAL and
/// SHM files with the database file's mode, so the database is made first,
/// 0600; files an older rindd left 0644 are changed.
fn private_files(db: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = |path: &Path, source| StoreError::Mode { path: path.display().to_string(), source };
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(db).map_err(|e| mode(db, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(mode(&p, e)),
            _ => {}
        }
    }
    Ok(())
}

/// The migrations, in order; the schema version is their count.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE images (name TEXT PRIMARY KEY, config TEXT NOT NULL, layers TEXT NOT NULL, created TEXT NOT NULL);
     CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image TEXT NOT NULL, spec TEXT NOT NULL,
        desired TEXT NOT NULL, restart_policy TEXT NOT NULL, bundle TEXT NOT NULL, shim_address TEXT,
        created TEXT NOT NULL, exit_code INTEGER, finished_at TEXT, exit_reason TEXT);",
    "ALTER TABLE containers ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
     ALTER TABLE containers ADD COLUMN status TEXT NOT NULL DEFAULT 'created';
     ALTER TABLE containers ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE containers ADD COLUMN started_at TEXT;
     ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE containers ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0;",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    pub name: String,
    pub config: String,
    pub layers: Vec<String>,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRow {
    pub id: String,
    pub name: String,
    pub image: String,
    pub spec: String,
    /// "running" or "stopped": what the user wants.
    pub desired: String,
    pub restart_policy: String,
    pub bundle: String,
    pub shim_address: Option<String>,
    pub created: String,
    pub exit_code: Option<i64>,
    pub finished_at: Option<String>,
    pub exit_reason: Option<String>,
    /// The create request as rindd keeps it (JSON of `services::containers::Config`).
    pub config: String,
    /// created, running, paused, exited, dead.
    pub status: String,
    pub pid: i64,
    pub started_at: Option<String>,
    pub restart_count: i64,
    /// The shim reported an OOM kill (TaskOOM) since the container last started.
    pub oom_killed: bool,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        private_files(path)?;
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let found: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::TooNew { path: path.display().to_string(), found, known });
        }
        let tx = conn.transaction()?;
        for m in &MIGRATIONS[found as usize..] {
            tx.execute_batch(m)?;
        }
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [known])?;
        tx.commit()?;
        Ok(Store { conn })
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
    }

    pub fn put_image(&mut self, img: &ImageRow) -> Result<(), StoreError> {
        let layers = serde_json::to_string(&img.layers).expect("strings serialize");
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO images (name, config, layers, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET config = excluded.config, layers = excluded.layers, created = excluded.created",
            params![img.name, img.config, layers, img.created],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn image(&self, name: &str) -> Result<Option<ImageRow>, StoreError> {
        let row = self
            .conn
            .query_row("SELECT name, config, layers, created FROM images WHERE name = ?1", [name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })
            .optional()?;
        row.map(|(name, config, layers, created)| {
            let layers = serde_json::from_str(&layers).map_err(|source| StoreError::Json { what: "images.layers", source })?;
            Ok(ImageRow { name, config, layers, created })
        })
        .transpose()
    }

    pub fn images(&self) -> Result<Vec<ImageRow>, StoreError> {
        let mut st = self.conn.prepare("SELECT name FROM images ORDER BY name")?;
        let names: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        names.iter().filter_map(|n| self.image(n).transpose()).collect()
    }

    pub fn delete_image(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM images WHERE name = ?1", [name])? > 0)
    }

    pub fn insert_container(&mut self, c: &ContainerRow) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let exists: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM containers WHERE id = ?1 OR name = ?2)", params![c.id, c.name], |r| r.get(0))?;
        if exists {
            return Err(StoreError::Exists(c.name.clone()));
        }
        tx.execute(
            "INSERT INTO containers (id, name, image, spec, desired, restart_policy, bundle, shim_address, created, exit_code, finished_at, exit_reason,
                config, status, pid, started_at, restart_count, oom_killed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            Self::params_of(c).as_slice(),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A row's columns as ?1..?18, in `COLUMNS` order (insert and update share it).
    fn params_of(c: &ContainerRow) -> [&dyn rusqlite::ToSql; 18] {
        [
            &c.id,
            &c.name,
            &c.image,
            &c.spec,
            &c.desired,
            &c.restart_policy,
            &c.bundle,
            &c.shim_address,
            &c.created,
            &c.exit_code,
            &c.finished_at,
            &c.exit_reason,
            &c.config,
            &c.status,
            &c.pid,
            &c.started_at,
            &c.restart_count,
            &c.oom_killed,
        ]
    }

    fn row(r: &rusqlite::Row) -> rusqlite::Result<ContainerRow> {
        Ok(ContainerRow {
            id: r.get(0)?,
            name: r.get(1)?,
            image: r.get(2)?,
            spec: r.get(3)?,
            desired: r.get(4)?,
            restart_policy: r.get(5)?,
            bundle: r.get(6)?,
            shim_address: r.get(7)?,
            created: r.get(8)?,
            exit_code: r.get(9)?,
            finished_at: r.get(10)?,
            exit_reason: r.get(11)?,
            config: r.get(12)?,
            status: r.get(13)?,
            pid: r.get(14)?,
            started_at: r.get(15)?,
            restart_count: r.get(16)?,
            oom_killed: r.get(17)?,
        })
    }

    const COLUMNS: &'static str =
        "id, name, image, spec, desired, restart_policy, bundle, shim_address, created, exit_code, finished_at, exit_reason,
        config, status, pid, started_at, restart_count, oom_killed";

    pub fn container(&self, id_or_name: &str) -> Result<Option<ContainerRow>, StoreError> {
        let sql = format!("SELECT {} FROM containers WHERE id = ?1 OR name = ?1", Self::COLUMNS);
        Ok(self.conn.query_row(&sql, [id_or_name], Self::row).optional()?)
    }

    pub fn containers(&self) -> Result<Vec<ContainerRow>, StoreError> {
        let sql = format!("SELECT {} FROM containers ORDER BY created", Self::COLUMNS);
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], Self::row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Applies `f` to the row and writes it back, in one transaction.
    pub fn update_container(&mut self, id: &str, f: impl FnOnce(&mut ContainerRow)) -> Result<ContainerRow, StoreError> {
        let tx = self.conn.transaction()?;
        let sql = format!("SELECT {} FROM containers WHERE id = ?1", Self::COLUMNS);
        let mut c = tx.query_row(&sql, [id], Self::row).optional()?.ok_or_else(|| StoreError::NotFound(id.into()))?;
        f(&mut c);
        let renamed: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM containers WHERE name = ?1 AND id != ?2)", params![c.name, c.id], |r| r.get(0))?;
        if renamed {
            return Err(StoreError::Exists(c.name.clone()));
        }
        tx.execute(
            "UPDATE containers SET name = ?2, image = ?3, spec = ?4, desired = ?5, restart_policy = ?6, bundle = ?7, shim_address = ?8,
                created = ?9, exit_code = ?10, finished_at = ?11, exit_reason = ?12, config = ?13, status = ?14, pid = ?15,
                started_at = ?16, restart_count = ?17, oom_killed = ?18 WHERE id = ?1",
            Self::params_of(&c).as_slice(),
        )?;
        tx.commit()?;
        Ok(c)
    }

    pub fn delete_container(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM containers WHERE id = ?1", [id])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str) -> ContainerRow {
        ContainerRow {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            spec: "{}".into(),
            desired: "running".into(),
            restart_policy: "no".into(),
            bundle: format!("/run/rind/containers/{id}"),
            shim_address: None,
            created: "2026-01-01T00:00:00Z".into(),
            exit_code: None,
            finished_at: None,
            exit_reason: None,
            config: "{}".into(),
            status: "created".into(),
            pid: 0,
            started_at: None,
            restart_count: 0,
            oom_killed: false,
        }
    }

    #[test]
    fn open_migrates_and_reopens() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        assert_eq!(Store::open(&p).unwrap().schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn open_makes_the_database_and_its_wal_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        let mode = |suffix: &str| std::fs::metadata(format!("{}{suffix}", p.display())).unwrap().permissions().mode() & 0o777;
        let mut s = Store::open(&p).unwrap();
        s.insert_container(&row("c1", "web")).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(suffix), 0o600, "meta.db{suffix}");
        }
        drop(s);
        // An older rindd's files: world-readable.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&p).unwrap());
        assert_eq!(mode(""), 0o600);
    }

    #[test]
    fn oom_killed_is_stored_and_old_rows_default_to_false() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        // A database of schema 2, before the column.
        let conn = Connection::open(&p).unwrap();
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2);").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute(
            "INSERT INTO containers (id, name, image, spec, desired, restart_policy, bundle, created) VALUES ('old', 'o', 'i', '{}', 'stopped', 'no', 'b', 't')",
            [],
        )
        .unwrap();
        drop(conn);
        let mut s = Store::open(&p).unwrap();
        assert!(!s.container("old").unwrap().unwrap().oom_killed);
        s.insert_container(&row("c1", "web")).unwrap();
        assert!(s.update_container("c1", |c| c.oom_killed = true).unwrap().oom_killed);
        assert!(s.container("web").unwrap().unwrap().oom_killed);
    }

    #[test]
    fn open_refuses_a_newer_schema() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        drop(Store::open(&p).unwrap());
        Connection::open(&p).unwrap().execute("UPDATE schema_version SET version = 99", []).unwrap();
        assert!(matches!(Store::open(&p), Err(StoreError::TooNew { found: 99, .. })));
    }

    #[test]
    fn containers_insert_update_delete() {
        let t = tempfile::tempdir().unwrap();
        let mut s = Store::open(&t.path().join("meta.db")).unwrap();
        s.insert_container(&row("c1", "web")).unwrap();
        assert!(matches!(s.insert_container(&row("c2", "web")), Err(StoreError::Exists(_))), "names are unique");
        let c = s
            .update_container("c1", |c| {
                c.exit_code = Some(3);
                c.desired = "stopped".into();
            })
            .unwrap();
        assert_eq!(c.exit_code, Some(3));
        s.insert_container(&row("c2", "db")).unwrap();
        assert!(matches!(s.update_container("c2", |c| c.name = "web".into()), Err(StoreError::Exists(_))), "rename to a taken name");
        assert!(s.delete_container("c2").unwrap());
        assert_eq!(s.container("web").unwrap().unwrap().desired, "stopped");
        assert_eq!(s.containers().unwrap().len(), 1);
        assert!(s.delete_container("c1").unwrap());
        assert!(s.container("c1").unwrap().is_none());
        assert!(matches!(s.update_container("c1", |_| {}), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn images_put_list_delete() {
        let t = tempfile::tempdir().unwrap();
        let mut s = Store::open(&t.path().join("meta.db")).unwrap();
        let img = ImageRow { name: "busybox:1".into(), config: "sha256:aa".into(), layers: vec!["sha256:bb".into()], created: "t".into() };
        s.put_image(&img).unwrap();
        s.put_image(&ImageRow { config: "sha256:cc".into(), ..img.clone() }).unwrap();
        assert_eq!(s.images().unwrap().len(), 1);
        assert_eq!(s.image("busybox:1").unwrap().unwrap().config, "sha256:cc");
        assert!(s.delete_image("busybox:1").unwrap());
        assert!(s.images().unwrap().is_empty());
    }
}
