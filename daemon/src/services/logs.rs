//! Reading the CRI log files the shims write:
//! `<RFC3339Nano time> <stdout|stderr> <P|F> <message>` per record; P records
//! are parts of a line that the following records complete.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: String,
    pub stream: String,
    /// The bytes as written: a full record gets its newline back.
    pub data: Vec<u8>,
    pub partial: bool,
}

/// Parses one record (without its trailing newline).
pub fn parse_record(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let tag = parts.next()?;
    let msg = parts.next().unwrap_or_default();
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let mut data = msg.to_vec();
    if !partial {
        data.push(b'\n');
    }
    Some(Record { time, stream, data, partial })
}

/// Follows a log file through an fd of its own, so it can be read to the
/// end even after the container (and its log) is removed.
pub struct Follower {
    file: std::fs::File,
    pending: Vec<u8>,
}

impl Follower {
    /// Opens (creating it if the shim has not yet) at the start or the end.
    pub fn open(path: &Path, from_end: bool) -> std::io::Result<Follower> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        // As the shim makes it: root only.
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(path)?;
        if from_end {
            file.seek(SeekFrom::End(0))?;
        }
        Ok(Follower { file, pending: Vec::new() })
    }

    /// The complete records written since the last call (an unfinished
    /// record waits for the next).
    pub fn read(&mut self) -> std::io::Result<Vec<Record>> {
        self.file.read_to_end(&mut self.pending)?;
        let complete = self.pending.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
        let records = self.pending[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()).filter_map(parse_record).collect();
        self.pending.drain(..complete);
        Ok(records)
    }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// `--since`: RFC 3339 or unix seconds (fractions allowed). None for what is
/// neither, or is past what a SystemTime holds (`1e300`, `inf`: the request's
/// text must not panic rindd).
pub fn parse_since(s: &str) -> Option<SystemTime> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_nan() {
            return None;
        }
        let since = std::time::Duration::try_from_secs_f64(secs.max(0.0)).ok()?;
        return SystemTime::UNIX_EPOCH.checked_add(since);
    }
    parse_time(s).or_else(|| humantime::parse_rfc3339(s).ok())
}

/// Applies `--since` and `--tail` to records (tail counts whole lines).
pub fn select(records: Vec<Record>, since: Option<SystemTime>, tail: Option<usize>) -> Vec<Record> {
    let mut r: Vec<Record> = match since {
        Some(t) => records.into_iter().filter(|r| parse_time(&r.time).is_none_or(|rt| rt >= t)).collect(),
        None => records,
    };
    if let Some(n) = tail {
        // Walk back over n full lines; a line is its P records and the F that ends it.
        let mut lines = 0;
        let mut start = r.len();
        while start > 0 {
            if !r[start - 1].partial {
                if lines == n {
                    break;
                }
                lines += 1;
            }
            start -= 1;
        }
        r.drain(..start);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_full_and_partial() {
        let r = parse_record(b"2026-01-01T00:00:00.000000001Z stdout F hello world").unwrap();
        assert_eq!(r.data, b"hello world\n");
        assert_eq!(r.stream, "stdout");
        assert!(!r.partial);
        let r = parse_record(b"2026-01-01T00:00:00Z stderr P / # ").unwrap();
        assert_eq!(r.data, b"/ # ");
        assert!(r.partial);
        assert_eq!(parse_record(b"2026-01-01T00:00:00Z stdout F ").unwrap().data, b"\n");
        assert!(parse_record(b"garbage").is_none());
    }

    #[test]
    fn follower_waits_for_unfinished_records_and_outlives_the_file() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c.log");
        std::fs::write(&p, "T stdout F old\n").unwrap();
        let mut f = Follower::open(&p, true).unwrap();
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        w.write_all(b"T stdout F one\nT stdout F tw").unwrap();
        let r = f.read().unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].data, b"one\n");
        w.write_all(b"o\n").unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(f.read().unwrap()[0].data, b"two\n");
        let mut all = Follower::open(&t.path().join("new.log"), false).unwrap();
        assert!(all.read().unwrap().is_empty(), "created empty");
    }

    #[test]
    fn tail_counts_lines_and_since_filters() {
        let recs: Vec<Record> = [
            "2026-01-01T00:00:01Z stdout F a",
            "2026-01-01T00:00:02Z stdout P b1",
            "2026-01-01T00:00:02Z stdout F b2",
            "2026-01-01T00:00:03Z stderr F c",
        ]
        .iter()
        .map(|l| parse_record(l.as_bytes()).unwrap())
        .collect();
        let last2 = select(recs.clone(), None, Some(2));
        assert_eq!(last2.len(), 3);
        assert_eq!(last2[0].data, b"b1");
        assert_eq!(select(recs.clone(), None, Some(0)).len(), 0);
        assert_eq!(select(recs.clone(), None, Some(10)).len(), 4);
        let since = parse_since("2026-01-01T00:00:02Z").unwrap();
        assert_eq!(select(recs.clone(), Some(since), None).len(), 3);
        let unix = parse_since("1767225603").unwrap();
        assert_eq!(select(recs, Some(unix), None).len(), 1);
    }

    #[test]
    fn parse_since_refuses_times_out_of_range() {
        // Found by fuzz/fuzz_targets/cri_log.rs: each panicked rindd.
        for s in ["1.5e21", "1e300", "inf", "NaN", "1e19"] {
            assert_eq!(parse_since(s), None, "{s}");
        }
        assert_eq!(parse_since("-5"), Some(SystemTime::UNIX_EPOCH), "before 1970 is 1970");
        assert!(parse_since("1.5").is_some());
    }
}
