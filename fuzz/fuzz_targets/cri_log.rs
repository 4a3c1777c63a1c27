//! CRI logs: the shim's writer (shim/src/logs.rs: records cut from what a
//! container writes, files rotated by size) and rindd's reader
//! (daemon/src/services/logs.rs: records, the follower, --since, --tail).
//! Invariants: what the shim writes reads back as exactly the bytes the
//! container wrote; a log file read in two pieces gives the records it gives
//! read at once; no input panics the parsers.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use rind_fuzz::harness::Sandbox;
use rind_fuzz::shim_logs;
use rindd::services::logs::{self, Follower, Record};

const NOW: &str = "2026-01-02T03:04:05.123456789Z";

/// The input, byte by byte (so seeds can be written by hand):
/// - `0 split:u16le tail:u8 (255: none) n:u8 since:n bytes, file...`: a log
///   file read by the follower in two pieces; then --since and --tail.
/// - `1 stderr:u8 max_size:u16le max_files:u8 reps:u8 k:u8 reads:k bytes, output...`:
///   what a container writes (repeated 1 + reps%8 times, so lines pass the
///   shim's 16 KiB record limit), read by the shim in reads of (b & 0x7f) * 97
///   bytes, the pipe drained after those with b & 0x80; through the shim's
///   writer into a file rotated at max_size.
/// - `2 uri...`: a stdio URI, as the shim's Create gets it.
#[derive(Debug)]
enum Case {
    Read { file: Vec<u8>, split: usize, since: String, tail: Option<usize> },
    Write { stderr: bool, output: Vec<u8>, reads: Vec<(usize, bool)>, max_size: u64, max_files: u32 },
    Uri(String),
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
}

fn case(data: &[u8]) -> Option<Case> {
    let mut b = Bytes(data);
    Some(match b.u8()? % 3 {
        0 => {
            let split = usize::from(b.u16()?);
            let tail = b.u8()?;
            let n = usize::from(b.u8()?);
            let since = String::from_utf8_lossy(b.take(n)?).into_owned();
            Case::Read { split, since, tail: (tail != 255).then_some(usize::from(tail)), file: b.0.to_vec() }
        }
        1 => {
            let stderr = b.u8()? & 1 == 1;
            let max_size = u64::from(b.u16()?);
            let max_files = u32::from(b.u8()?);
            let reps = usize::from(b.u8()? % 8) + 1;
            let k = usize::from(b.u8()?);
            let reads = b.take(k)?.iter().map(|&r| (usize::from(r & 0x7f) * 97, r & 0x80 != 0)).collect();
            Case::Write { stderr, max_size, max_files, reads, output: b.0.repeat(reps) }
        }
        _ => Case::Uri(String::from_utf8_lossy(b.0).into_owned()),
    })
}

fn read(file: &[u8], split: usize) {
    let sb = Sandbox::new();
    let path = sb.work.join("c.log");
    std::fs::write(&path, b"").expect("create the log");
    let mut f = Follower::open(&path, false).expect("open the log");
    let mut w = std::fs::OpenOptions::new().append(true).open(&path).expect("open the log to write");
    let split = split % (file.len() + 1);
    w.write_all(&file[..split]).expect("write");
    let mut pieces = f.read().expect("read");
    w.write_all(&file[split..]).expect("write");
    pieces.extend(f.read().expect("read"));
    let whole = Follower::open(&path, false).expect("open the log").read().expect("read");
    assert_eq!(pieces, whole, "read in two pieces, the records differ");
}

fn write(stream: &str, output: &[u8], reads: &[(usize, bool)], max_size: u64, max_files: u32) {
    let sb = Sandbox::new();
    let path = sb.work.join("c.log");
    let mut file = shim_logs::LogFile::open(&path, max_size, max_files.max(1)).expect("open the log");
    let (mut pending, mut written, mut rest) = (Vec::new(), Vec::new(), output);
    let mut eof_line = false;
    for &(n, drained) in reads.iter().chain(std::iter::once(&(usize::MAX, false))) {
        let (now, later) = rest.split_at(n.min(rest.len()));
        rest = later;
        pending.extend_from_slice(now);
        let out = shim_logs::cri_records(stream, &mut pending, NOW, false, drained);
        written.extend_from_slice(&out);
        file.write(&out).expect("write the log");
        if rest.is_empty() {
            break;
        }
    }
    eof_line |= !pending.is_empty();
    let out = shim_logs::cri_records(stream, &mut pending, NOW, true, false);
    assert!(pending.is_empty(), "bytes left after EOF");
    written.extend_from_slice(&out);
    file.write(&out).expect("write the log");

    let records: Vec<Record> = written
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| logs::parse_record(l).expect("the shim's record parses"))
        .collect();
    assert!(records.iter().all(|r| r.time == NOW && r.stream == stream));
    let data: Vec<u8> = records.iter().flat_map(|r| r.data.iter().copied()).collect();
    let mut want = output.to_vec();
    // A last line without a newline gets one, as the container's output ends.
    if eof_line {
        want.push(b'\n');
    }
    assert_eq!(data, want, "what the shim logged does not read back as what was written");
    // Rotation cuts between records only: every file that is left reads whole.
    let mut files = vec![path.clone()];
    files.extend((1..max_files).map(|i| std::path::PathBuf::from(format!("{}.{i}", path.display()))));
    for p in files.iter().filter(|p| p.exists()) {
        let bytes = std::fs::read(p).expect("read a log file");
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "{} ends inside a record", p.display());
        for l in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(logs::parse_record(l).is_some(), "{} holds a line that is not a record", p.display());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(case) = case(data) else { return };
    match case {
        Case::Read { file, split, since, tail } => {
            read(&file, split);
            let records: Vec<Record> = file.split(|&b| b == b'\n').filter(|l| !l.is_empty()).filter_map(logs::parse_record).collect();
            let since = logs::parse_since(&since);
            let picked = logs::select(records.clone(), since, tail);
            assert!(picked.len() <= records.len());
            if let Some(n) = tail {
                assert!(picked.iter().filter(|r| !r.partial).count() <= n, "--tail {n} gave more lines");
            }
        }
        Case::Write { stderr, output, reads, max_size, max_files } => {
            write(if stderr { "stderr" } else { "stdout" }, &output, &reads, max_size, max_files)
        }
        Case::Uri(uri) => {
            if let Ok(Some(shim_logs::Target::Cri { max_files, .. })) = shim_logs::parse_target(&uri) {
                assert!(max_files >= 1);
            }
        }
    }
});
