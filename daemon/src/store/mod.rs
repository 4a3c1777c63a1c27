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
//! `status`, `desired` and `restart_policy` hold Docker's words ("running",
//! "on-failure:3"), times RFC 3339 in UTC with nanoseconds; they are typed
//! here, and a value that does not parse is an error naming its row.
//! meta.db and its WAL and SHM files are 0600.
//! Every change is one transaction.

use std::path::Path;
use std::str::FromStr;
use std::time::SystemTime;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::services::restart::Policy;

mod state;

pub use state::{Desired, StateError, Status};

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
    /// A column of a container's row rindd cannot read: never taken as a default.
    #[error("metadata store: container {id} ({name}): bad {column} {value:?}")]
    Corrupt {
        id: String,
        name: String,
        column: &'static str,
        value: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How rindd writes a time: RFC 3339, UTC, nanoseconds (Docker's format,
/// and what every row has held so far).
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

pub fn parse_time(s: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339(s)
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
    /// What the user wants.
    pub desired: Desired,
    pub restart_policy: Policy,
    pub bundle: String,
    pub shim_address: Option<String>,
    pub created: SystemTime,
    pub exit_code: Option<i64>,
    pub finished_at: Option<SystemTime>,
    pub exit_reason: Option<String>,
    /// The create request as rindd keeps it (JSON of `services::containers::Config`).
    pub config: String,
    pub status: Status,
    pub pid: i64,
    pub started_at: Option<SystemTime>,
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
            rusqlite::params_from_iter(Self::values_of(c)),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A row's columns as ?1..?18, in `COLUMNS` order (insert and update
    /// share it): the typed fields as the text they are stored as.
    fn values_of(c: &ContainerRow) -> [Value; 18] {
        [
            c.id.clone().into(),
            c.name.clone().into(),
            c.image.clone().into(),
            c.spec.clone().into(),
            c.desired.as_str().to_string().into(),
            c.restart_policy.to_string().into(),
            c.bundle.clone().into(),
            c.shim_address.clone().into(),
            format_time(c.created).into(),
            c.exit_code.into(),
            c.finished_at.map(format_time).into(),
            c.exit_reason.clone().into(),
            c.config.clone().into(),
            c.status.as_str().to_string().into(),
            c.pid.into(),
            c.started_at.map(format_time).into(),
            c.restart_count.into(),
            c.oom_killed.into(),
        ]
    }

    /// The row in `COLUMNS` order. The outer error is SQLite's; the inner one
    /// a column that does not read, naming the row.
    fn row(r: &rusqlite::Row) -> rusqlite::Result<Result<ContainerRow, StoreError>> {
        // What names the row in an error, whatever the two columns hold.
        let (id, name) = (describe(r.get_ref(0)?), describe(r.get_ref(1)?));
        Ok(Columns { r, id, name }.read())
    }

    const COLUMNS: &'static str =
        "id, name, image, spec, desired, restart_policy, bundle, shim_address, created, exit_code, finished_at, exit_reason,
        config, status, pid, started_at, restart_count, oom_killed";

    /// The container with this id or name; a row that does not read is an
    /// error naming it.
    pub fn container(&self, id_or_name: &str) -> Result<Option<ContainerRow>, StoreError> {
        let sql = format!("SELECT {} FROM containers WHERE id = ?1 OR name = ?1", Self::COLUMNS);
        self.conn.query_row(&sql, [id_or_name], Self::row).optional()?.transpose()
    }

    /// Every container, oldest first; one row that does not read is an
    /// error naming it. For what must not skip a row (the image collector
    /// would take a container's layers).
    pub fn containers(&self) -> Result<Vec<ContainerRow>, StoreError> {
        self.scan_containers()?.into_iter().collect()
    }

    /// Every container, oldest first, each row read on its own: one that
    /// does not read is its error (`StoreError::Corrupt`, naming it) in its
    /// place, and the others are still there.
    pub fn scan_containers(&self) -> Result<Vec<Result<ContainerRow, StoreError>>, StoreError> {
        let sql = format!("SELECT {} FROM containers ORDER BY created", Self::COLUMNS);
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], Self::row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Applies `f` to the row and writes it back, in one transaction.
    pub fn update_container(&mut self, id: &str, f: impl FnOnce(&mut ContainerRow)) -> Result<ContainerRow, StoreError> {
        let tx = self.conn.transaction()?;
        let sql = format!("SELECT {} FROM containers WHERE id = ?1", Self::COLUMNS);
        let mut c = tx.query_row(&sql, [id], Self::row).optional()?.ok_or_else(|| StoreError::NotFound(id.into()))??;
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
            rusqlite::params_from_iter(Self::values_of(&c)),
        )?;
        tx.commit()?;
        Ok(c)
    }

    pub fn delete_container(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM containers WHERE id = ?1", [id])? > 0)
    }
}

/// The columns of one container's row, read in `COLUMNS` order; a value
/// that does not read is `StoreError::Corrupt` naming the row and column.
struct Columns<'a, 'r> {
    r: &'a rusqlite::Row<'r>,
    id: String,
    name: String,
}

impl Columns<'_, '_> {
    fn read(self) -> Result<ContainerRow, StoreError> {
        Ok(ContainerRow {
            image: self.get(2, "image")?,
            spec: self.get(3, "spec")?,
            desired: self.parse(4, "desired")?,
            restart_policy: self.parse(5, "restart_policy")?,
            bundle: self.get(6, "bundle")?,
            shim_address: self.get(7, "shim_address")?,
            created: self.time(8, "created")?,
            exit_code: self.get(9, "exit_code")?,
            finished_at: self.time_opt(10, "finished_at")?,
            exit_reason: self.get(11, "exit_reason")?,
            config: self.get(12, "config")?,
            status: self.parse(13, "status")?,
            pid: self.get(14, "pid")?,
            started_at: self.time_opt(15, "started_at")?,
            restart_count: self.get(16, "restart_count")?,
            oom_killed: self.get(17, "oom_killed")?,
            id: self.get(0, "id")?,
            name: self.get(1, "name")?,
        })
    }

    fn corrupt(&self, column: &'static str, value: String, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError::Corrupt { id: self.id.clone(), name: self.name.clone(), column, value, source: source.into() }
    }

    /// A column of the SQL type `T` reads from (a wrong type is corrupt too).
    fn get<T: rusqlite::types::FromSql>(&self, i: usize, column: &'static str) -> Result<T, StoreError> {
        self.r.get(i).map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                let value = self.r.get_ref(i).map(describe).unwrap_or_default();
                self.corrupt(column, value, e)
            }
            e => e.into(),
        })
    }

    fn parse<T>(&self, i: usize, column: &'static str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let s: String = self.get(i, column)?;
        s.parse().map_err(|e| self.corrupt(column, s, e))
    }

    fn time(&self, i: usize, column: &'static str) -> Result<SystemTime, StoreError> {
        let s: String = self.get(i, column)?;
        parse_time(&s).map_err(|e| self.corrupt(column, s, e))
    }

    fn time_opt(&self, i: usize, column: &'static str) -> Result<Option<SystemTime>, StoreError> {
        let s: Option<String> = self.get(i, column)?;
        s.map(|s| parse_time(&s).map_err(|e| self.corrupt(column, s, e))).transpose()
    }
}

/// A stored value as the error shows it.
fn describe(v: ValueRef) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
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
            desired: Desired::Running,
            restart_policy: Policy::No,
            bundle: format!("/run/rind/containers/{id}"),
            shim_address: None,
            created: parse_time("2026-01-01T00:00:00Z").unwrap(),
            exit_code: None,
            finished_at: None,
            exit_reason: None,
            config: "{}".into(),
            status: Status::Created,
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
            "INSERT INTO containers (id, name, image, spec, desired, restart_policy, bundle, created) VALUES ('old', 'o', 'i', '{}', 'stopped', 'no', 'b', '2025-06-01T10:00:00.123456789Z')",
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
                c.desired = Desired::Stopped;
            })
            .unwrap();
        assert_eq!(c.exit_code, Some(3));
        s.insert_container(&row("c2", "db")).unwrap();
        assert!(matches!(s.update_container("c2", |c| c.name = "web".into()), Err(StoreError::Exists(_))), "rename to a taken name");
        assert!(s.delete_container("c2").unwrap());
        assert_eq!(s.container("web").unwrap().unwrap().desired, Desired::Stopped);
        assert_eq!(s.containers().unwrap().len(), 1);
        assert!(s.delete_container("c1").unwrap());
        assert!(s.container("c1").unwrap().is_none());
        assert!(matches!(s.update_container("c1", |_| {}), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn typed_columns_are_stored_as_dockers_words() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        let mut s = Store::open(&p).unwrap();
        let finished = parse_time("2026-01-01T00:00:01.000000042Z").unwrap();
        let c = ContainerRow {
            status: Status::Exited,
            desired: Desired::Stopped,
            restart_policy: Policy::OnFailure(3),
            finished_at: Some(finished),
            ..row("c1", "web")
        };
        s.insert_container(&c).unwrap();
        assert_eq!(s.container("web").unwrap().unwrap(), c);
        let raw: (String, String, String, String, String) = Connection::open(&p)
            .unwrap()
            .query_row("SELECT status, desired, restart_policy, created, finished_at FROM containers", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        let want = ("exited", "stopped", "on-failure:3", "2026-01-01T00:00:00.000000000Z", "2026-01-01T00:00:01.000000042Z");
        assert_eq!((raw.0.as_str(), raw.1.as_str(), raw.2.as_str(), raw.3.as_str(), raw.4.as_str()), want);
    }

    /// A row spoilt behind rindd's back (a hand edit, a downgrade, a bad disk).
    fn spoil(p: &Path, id: &str, column: &str, value: rusqlite::types::Value) {
        let sql = format!("UPDATE containers SET {column} = ?1 WHERE id = ?2");
        assert_eq!(Connection::open(p).unwrap().execute(&sql, params![value, id]).unwrap(), 1);
    }

    #[test]
    fn corrupt_row_is_an_error_naming_the_container_column_and_value() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        let mut s = Store::open(&p).unwrap();
        for (id, name) in [("c1", "web"), ("c2", "db"), ("c3", "cache"), ("c4", "queue")] {
            s.insert_container(&row(id, name)).unwrap();
        }
        spoil(&p, "c1", "restart_policy", "sometimes".to_string().into());
        spoil(&p, "c2", "status", "runing".to_string().into());
        spoil(&p, "c3", "started_at", "yesterday".to_string().into());
        spoil(&p, "c4", "desired", 1i64.into());
        for (key, id, name, column, value) in [
            ("web", "c1", "web", "restart_policy", "sometimes"),
            ("c2", "c2", "db", "status", "runing"),
            ("cache", "c3", "cache", "started_at", "yesterday"),
            ("queue", "c4", "queue", "desired", "1"),
        ] {
            let e = s.container(key).expect_err("a corrupt row is never read as a default");
            let StoreError::Corrupt { id: i, name: n, column: c, value: v, .. } = &e else { panic!("{e:?}") };
            assert_eq!((i.as_str(), n.as_str(), *c, v.as_str()), (id, name, column, value));
            let msg = e.to_string();
            assert!(msg.contains(id) && msg.contains(name) && msg.contains(column) && msg.contains(value), "{msg}");
            assert!(matches!(s.update_container(id, |_| {}), Err(StoreError::Corrupt { .. })), "nor written back");
        }
        // The policy's own error says what is valid.
        let e = s.container("web").unwrap_err();
        let cause = std::error::Error::source(&e).expect("a cause").to_string();
        assert!(cause.contains("on-failure"), "{cause}");
    }

    #[test]
    fn listing_reports_a_corrupt_row_in_its_place() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.db");
        let mut s = Store::open(&p).unwrap();
        s.insert_container(&row("c1", "web")).unwrap();
        s.insert_container(&ContainerRow { created: parse_time("2026-01-02T00:00:00Z").unwrap(), ..row("c2", "db") }).unwrap();
        spoil(&p, "c1", "status", "zombie".to_string().into());
        let scanned = s.scan_containers().unwrap();
        assert_eq!(scanned.len(), 2, "nothing dropped");
        assert!(matches!(&scanned[0], Err(StoreError::Corrupt { id, column: "status", .. }) if id == "c1"));
        assert_eq!(scanned[1].as_ref().unwrap().name, "db");
        let e = s.containers().expect_err("the strict listing refuses");
        assert!(e.to_string().contains("c1 (web)"), "{e}");
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
