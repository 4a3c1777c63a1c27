//! Applies one image layer (plain, gzip or zstd tar) to a new snapshot
//! directory in overlayfs form: a whiteout `.wh.x` becomes a 0:0 character
//! device `x`, an opaque marker `.wh..wh..opq` the `trusted.overlay.opaque`
//! xattr on its directory. Hostile archives are refused with the entry and
//! the reason: absolute paths or `..`, paths through a symlink, hard links
//! leaving the layer, device nodes. The uncompressed stream is hashed and
//! counted as it is unpacked ([`Verifier`]): a layer whose digest is not the
//! image config's diff_id, or that is larger than the limit, is refused.
//! Nothing is half-written: the layer is unpacked into a temporary directory
//! that is renamed into place only when every entry applied and the digest
//! matched.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::content::Digest;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {entry:?} refused: {reason}")]
    Hostile { entry: String, reason: &'static str },
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// The layer is not what the image config says it is: sharing its
    /// snapshot under the config's chain id would hand another image's
    /// layer this content.
    #[error("its uncompressed digest is {actual}, but the image config's diff_id says {expected}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("it is larger than {limit} bytes uncompressed (max_layer_size)")]
    TooLarge { limit: u64 },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io { op, path: path.to_path_buf(), source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Recognises the compression by its magic bytes.
pub fn detect(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub whiteouts: u64,
    /// File data written.
    pub bytes: u64,
    /// The uncompressed layer: the whole tar stream.
    pub size: u64,
}

/// A reader that hashes and counts what passes through it and refuses to
/// pass more than `limit` bytes: the layer's diff_id and size come out of the
/// one pass that unpacks it.
pub struct Verifier<R> {
    inner: R,
    hash: Sha256,
    read: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Verifier<R> {
    pub fn new(inner: R, limit: u64) -> Verifier<R> {
        Verifier { inner, hash: Sha256::new(), read: 0, limit, exceeded: false }
    }

    /// Whether the stream went past the limit (the read that did failed).
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Bytes passed so far.
    pub fn size(&self) -> u64 {
        self.read
    }

    /// Reads the rest (the tar's end-of-archive blocks and anything after
    /// them are part of the diff_id, as containerd's apply drains them too)
    /// and returns the digest of everything read.
    pub fn finish(&mut self) -> io::Result<Digest> {
        io::copy(self, &mut io::sink())?;
        Ok(Digest::of_hash(std::mem::take(&mut self.hash)))
    }
}

impl<R: Read> Read for Verifier<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let too_large = || io::Error::other(format!("more than {} bytes", self.limit));
        if self.exceeded {
            return Err(too_large());
        }
        // One byte past the limit is enough to know it is passed.
        let room = self.limit.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if self.read + n as u64 > self.limit {
            self.exceeded = true;
            return Err(too_large());
        }
        self.hash.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The entry's path, relative and without `..`, or why not.
pub fn clean_entry_path(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
            Component::ParentDir => return Err("path with '..'"),
        }
    }
    Ok(out)
}

/// Unpacks the layer at `blob` into `dest`, which must not exist yet, if its
/// uncompressed stream has the digest `diff_id` and at most `max_size` bytes.
pub fn unpack_layer(blob: &Path, dest: &Path, diff_id: &Digest, max_size: u64) -> Result<Stats, UnpackError> {
    if dest.exists() {
        return Err(UnpackError::Exists(dest.to_path_buf()));
    }
    let file = File::open(blob).map_err(io_err("open layer", blob))?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().map_err(io_err("read layer", blob))?.to_vec();
    let stream: Box<dyn Read> = match detect(&head) {
        Compression::None => Box::new(reader),
        // Every member, as Go's gzip reader (Docker, containerd) reads them:
        // the diff_id is the digest of them all.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(io_err("read zstd layer", blob))?),
    };
    let name = dest.file_name().unwrap_or(OsStr::new("layer")).to_string_lossy().into_owned();
    let tmp = dest.with_file_name(format!(".{name}.unpacking-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
    let mut verifier = Verifier::new(stream, max_size);
    let applied = apply(&mut verifier, &tmp).and_then(|mut stats| {
        let actual = verifier.finish().map_err(io_err("read layer", blob))?;
        if actual != *diff_id {
            return Err(UnpackError::DiffIdMismatch { expected: diff_id.clone(), actual });
        }
        stats.size = verifier.size();
        Ok(stats)
    });
    // Past the limit, tar's error is only a symptom.
    let applied = if verifier.exceeded() { Err(UnpackError::TooLarge { limit: max_size }) } else { applied };
    match applied {
        Ok(stats) => {
            fs::rename(&tmp, dest).map_err(io_err("rename into place", dest))?;
            Ok(stats)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Refuses a path whose parent directories are not plain directories inside
/// `root` (a symlink among them would let an entry land outside).
fn check_parents(root: &Path, rel: &Path, entry: &str) -> Result<(), UnpackError> {
    let mut cur = root.to_path_buf();
    let parents: Vec<_> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
    for c in parents {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::Hostile { entry: entry.into(), reason: "path goes through a symlink" })
            }
            Ok(m) if !m.is_dir() => return Err(UnpackError::Hostile { entry: entry.into(), reason: "a parent is not a directory" }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(io_err("create", &cur))?;
            }
            Err(e) => return Err(io_err("stat", &cur)(e)),
        }
    }
    Ok(())
}

fn remove_existing(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => fs::remove_file(path).map_err(io_err("replace", path)),
        Err(_) => Ok(()),
    }
}

fn apply(stream: impl Read, root: &Path) -> Result<Stats, UnpackError> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    archive.set_overwrite(true);
    let mut stats = Stats::default();
    let entries = archive.entries().map_err(io_err("read layer", root))?;
    for entry in entries {
        let mut entry = entry.map_err(io_err("read layer entry", root))?;
        let raw = entry.path().map_err(io_err("read entry path", root))?.into_owned();
        let shown = raw.display().to_string();
        let rel = clean_entry_path(&raw).map_err(|reason| UnpackError::Hostile { entry: shown.clone(), reason })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        stats.entries += 1;
        check_parents(root, &rel, &shown)?;
        let target = root.join(&rel);
        let fname = rel.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        if fname == b".wh..wh..opq" {
            let dir = target.parent().unwrap_or(root);
            set_opaque(dir)?;
            stats.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = fname.strip_prefix(b".wh.") {
            let at = target.with_file_name(OsStr::from_bytes(hidden));
            remove_existing(&at)?;
            whiteout(&at)?;
            stats.whiteouts += 1;
            continue;
        }
        match entry.header().entry_type() {
            EntryType::Char | EntryType::Block => return Err(UnpackError::Hostile { entry: shown, reason: "device node" }),
            EntryType::Link => {
                let link = entry.link_name().map_err(io_err("read link", &target))?.unwrap_or_default().into_owned();
                let src_rel = clean_entry_path(&link).map_err(|reason| UnpackError::Hostile { entry: shown.clone(), reason })?;
                check_parents(root, &src_rel, &shown)?;
                let src = root.join(&src_rel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(UnpackError::Hostile {
                            entry: shown,
                            reason: "hard link to something that is not a file of this layer",
                        })
                    }
                }
                remove_existing(&target)?;
                fs::hard_link(&src, &target).map_err(io_err("hard link", &target))?;
                continue;
            }
            EntryType::Directory => {}
            _ => remove_existing(&target)?,
        }
        // A sparse file's size is what the header claims, up to 2^63 each.
        stats.bytes = stats.bytes.saturating_add(entry.header().size().unwrap_or(0));
        entry.unpack(&target).map_err(io_err("unpack", &target))?;
    }
    Ok(stats)
}

/// An overlayfs whiteout: a character device 0:0.
fn whiteout(path: &Path) -> Result<(), UnpackError> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| UnpackError::Io {
        op: "create whiteout",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

fn set_opaque(dir: &Path) -> Result<(), UnpackError> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| UnpackError::Hostile { entry: dir.display().to_string(), reason: "NUL in path" })?;
    // SAFETY: lsetxattr with NUL-terminated strings and a 1-byte value we own.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        return Err(UnpackError::Io { op: "mark opaque", path: dir.to_path_buf(), source: io::Error::last_os_error() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tar from (path, kind, data-or-link) triples.
    fn layer(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == EntryType::Directory { 0o755 } else { 0o644 });
            h.set_uid(nix::unistd::geteuid().as_raw() as u64);
            h.set_gid(nix::unistd::getegid().as_raw() as u64);
            h.set_mtime(1_700_000_000);
            // Paths and link names go in raw: the builder's own checks would refuse the hostile ones.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            match kind {
                EntryType::Symlink | EntryType::Link => {
                    h.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
                    h.set_size(0);
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn unpack_bytes(data: &[u8], compress: Compression) -> (tempfile::TempDir, Result<Stats, UnpackError>) {
        let t = tempfile::tempdir().unwrap();
        let blob = t.path().join("blob");
        let bytes = match compress {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                io::Write::write_all(&mut e, data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        };
        fs::write(&blob, bytes).unwrap();
        let r = unpack_layer(&blob, &t.path().join("snap"), &Digest::of(data), u64::MAX);
        (t, r)
    }

    fn left_in(t: &tempfile::TempDir) -> Vec<std::ffi::OsString> {
        fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect()
    }

    #[test]
    fn verifier_hashes_counts_and_stops_past_the_limit() {
        let data = vec![7u8; 10_000];
        let mut v = Verifier::new(&data[..], 10_000);
        let mut head = [0u8; 100];
        v.read_exact(&mut head).unwrap();
        assert_eq!(v.finish().unwrap(), Digest::of(&data), "finish drains the rest into the digest");
        assert_eq!(v.size(), 10_000);
        assert!(!v.exceeded());

        let mut v = Verifier::new(&data[..], 9_999);
        let e = io::copy(&mut v, &mut io::sink()).unwrap_err();
        assert!(v.exceeded(), "{e}");
        assert!(v.size() <= 9_999, "nothing past the limit is passed on");
        assert!(v.read(&mut head).is_err(), "it stays refused");
    }

    #[test]
    fn wrong_diff_id_is_refused_and_nothing_is_left() {
        let data = layer(&[("POISONED", EntryType::Regular, "x")]);
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("blob"), &data).unwrap();
        let claimed = Digest::of(b"busybox's real layer");
        let e = unpack_layer(&t.path().join("blob"), &t.path().join("snap"), &claimed, u64::MAX).unwrap_err();
        match &e {
            UnpackError::DiffIdMismatch { expected, actual } => assert_eq!((expected, actual), (&claimed, &Digest::of(&data))),
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains(claimed.as_str()), "{e}");
        assert_eq!(left_in(&t), vec![OsStr::new("blob").to_os_string()], "half-written snapshot left behind");
    }

    #[test]
    fn layer_over_the_size_limit_is_refused_and_nothing_is_left() {
        let data = layer(&[("big", EntryType::Regular, &"x".repeat(4096))]);
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("blob"), &data).unwrap();
        let limit = data.len() as u64 - 1;
        let e = unpack_layer(&t.path().join("blob"), &t.path().join("snap"), &Digest::of(&data), limit).unwrap_err();
        assert!(matches!(e, UnpackError::TooLarge { limit: l } if l == limit), "{e}");
        assert_eq!(left_in(&t), vec![OsStr::new("blob").to_os_string()]);
        // Exactly at the limit is fine.
        let stats = unpack_layer(&t.path().join("blob"), &t.path().join("snap"), &Digest::of(&data), limit + 1).unwrap();
        assert_eq!(stats.size, data.len() as u64);
    }

    #[test]
    fn trailing_data_and_every_gzip_member_count() {
        // A tar, then zeros past its end, in two gzip members: the diff_id and
        // the size are those of the whole stream, as Docker computes them.
        let tar = layer(&[("a", EntryType::Regular, "x")]);
        let zeros = vec![0u8; 1 << 20];
        let gz = |d: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut e, d).unwrap();
            e.finish().unwrap()
        };
        let whole: Vec<u8> = [tar.clone(), zeros.clone()].concat();
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("blob"), [gz(&tar), gz(&zeros)].concat()).unwrap();
        let stats = unpack_layer(&t.path().join("blob"), &t.path().join("snap"), &Digest::of(&whole), u64::MAX).unwrap();
        assert_eq!(stats.size, whole.len() as u64);
        let e = unpack_layer(&t.path().join("blob"), &t.path().join("snap2"), &Digest::of(&tar), u64::MAX).unwrap_err();
        assert!(matches!(e, UnpackError::DiffIdMismatch { .. }), "{e}");
        let e = unpack_layer(&t.path().join("blob"), &t.path().join("snap3"), &Digest::of(&whole), tar.len() as u64).unwrap_err();
        assert!(matches!(e, UnpackError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn detect_compression() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"etc/\0"), Compression::None);
    }

    #[test]
    fn clean_entry_path_rules() {
        assert_eq!(clean_entry_path(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
        assert!(clean_entry_path(Path::new("/etc/passwd")).is_err());
        assert!(clean_entry_path(Path::new("a/../../x")).is_err());
    }

    #[test]
    fn unpack_plain_gzip_and_zstd() {
        let data = layer(&[
            ("etc/", EntryType::Directory, ""),
            ("etc/hostname", EntryType::Regular, "box\n"),
            ("etc/link", EntryType::Symlink, "/etc/hostname"),
            ("etc/hard", EntryType::Link, "etc/hostname"),
        ]);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (t, r) = unpack_bytes(&data, c);
            let stats = r.unwrap();
            assert_eq!(stats.entries, 4, "{c:?}");
            let snap = t.path().join("snap");
            assert_eq!(fs::read_to_string(snap.join("etc/hostname")).unwrap(), "box\n");
            assert_eq!(fs::read_link(snap.join("etc/link")).unwrap(), PathBuf::from("/etc/hostname"));
            assert_eq!(fs::read_to_string(snap.join("etc/hard")).unwrap(), "box\n");
        }
    }

    #[test]
    fn hostile_layers_are_refused_and_nothing_is_left() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (layer(&[("../escape", EntryType::Regular, "x")]), ".."),
            (layer(&[("/etc/evil", EntryType::Regular, "x")]), "absolute"),
            (layer(&[("lnk", EntryType::Symlink, "/"), ("lnk/etc/evil", EntryType::Regular, "x")]), "symlink"),
            (layer(&[("hard", EntryType::Link, "../../etc/passwd")]), ".."),
            (layer(&[("hard", EntryType::Link, "/etc/passwd")]), "absolute"),
            (layer(&[("null", EntryType::Char, "")]), "device"),
        ];
        for (data, want) in cases {
            let (t, r) = unpack_bytes(&data, Compression::None);
            let err = r.unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
            assert_eq!(left_in(&t), vec![OsStr::new("blob").to_os_string()], "half-written snapshot left behind");
        }
    }

    #[test]
    fn sparse_files_of_exabytes_do_not_overflow_the_count() {
        // Found with fuzz/fuzz_targets/unpack.rs: three GNU sparse files of
        // 2^63-1 bytes each (one byte of data at the end) overflowed
        // Stats::bytes. They unpack only where a file can be that large:
        // tmpfs, as /dev/shm is; XFS and btrfs too.
        let mut b = tar::Builder::new(Vec::new());
        for name in ["a", "b", "c"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::GNUSparse);
            h.set_path(name).unwrap();
            h.set_mode(0o644);
            h.set_uid(nix::unistd::geteuid().as_raw() as u64);
            h.set_gid(nix::unistd::getegid().as_raw() as u64);
            h.set_size(1);
            let gnu = h.as_gnu_mut().unwrap();
            gnu.set_real_size(i64::MAX as u64);
            gnu.sparse[0].set_offset(i64::MAX as u64 - 1);
            gnu.sparse[0].set_length(1);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        }
        let data = b.into_inner().unwrap();
        let t = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm, where a file may have 2^63-1 bytes");
        fs::write(t.path().join("blob"), &data).unwrap();
        let stats = unpack_layer(&t.path().join("blob"), &t.path().join("snap"), &Digest::of(&data), u64::MAX).unwrap();
        assert_eq!(stats.bytes, u64::MAX);
        assert_eq!(fs::metadata(t.path().join("snap/c")).unwrap().len(), i64::MAX as u64);
    }

    #[test]
    fn existing_destination_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let data = layer(&[("a", EntryType::Regular, "x")]);
        fs::write(t.path().join("blob"), &data).unwrap();
        fs::create_dir(t.path().join("snap")).unwrap();
        let r = unpack_layer(&t.path().join("blob"), &t.path().join("snap"), &Digest::of(&data), u64::MAX);
        assert!(matches!(r, Err(UnpackError::Exists(_))));
    }
}
