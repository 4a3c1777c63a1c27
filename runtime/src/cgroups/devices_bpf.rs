//! cgroup v2 device control: v2 has no devices.allow file, so, as runc and
//! crun do, we compile the rules into a BPF_PROG_TYPE_CGROUP_DEVICE program
//! and attach it to the container's cgroup.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! where access_type = (access << 16) | type. Rules are checked from last to
//! first (a later rule overrides an earlier one) and the first match decides;
//! no match denies.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::plan::DeviceRule;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV32_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0xf), off, imm }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// Compiles rules (in configured order) into a program. Registers:
/// r2 = device type, r3 = requested access, r4 = major, r5 = minor.
pub fn compile(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let bits = access_bits(&rule.access);
        let matches_all = rule.kind == 'a' && rule.major.is_none() && rule.minor.is_none() && bits == 7;
        // Each check jumps to the end of this block when the rule does not match;
        // NEXT is patched to that distance below.
        const NEXT: i16 = i16::MIN;
        let mut block = Vec::new();
        match rule.kind {
            'c' => block.push(insn(JNE_K, 2, 0, NEXT, DEV_CHAR)),
            'b' => block.push(insn(JNE_K, 2, 0, NEXT, DEV_BLOCK)),
            _ => {}
        }
        if bits != 7 {
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, bits));
            if rule.allow {
                // allow only if every requested bit is allowed: (req & bits) == req
                block.push(insn(JNE_X, 1, 3, NEXT, 0));
            } else {
                // deny if any requested bit is denied: (req & bits) != 0
                block.push(insn(JEQ_K, 1, 0, NEXT, 0));
            }
        }
        if let Some(major) = rule.major {
            block.push(insn(JNE_K, 4, 0, NEXT, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JNE_K, 5, 0, NEXT, minor as i32));
        }
        block.push(insn(MOV32_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.off == NEXT {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
        if matches_all {
            // Rules before a catch-all can never be reached.
            return prog;
        }
    }
    prog.push(insn(MOV32_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    _pad: [u64; 12],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _pad: [u32; 11],
}

/// Loads the program and attaches it to the cgroup directory `cgroup`.
pub fn attach(prog: &[Insn], cgroup: &std::fs::File) -> io::Result<()> {
    let license = c"Apache";
    let load = |log: &mut [u8]| {
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
            ..Default::default()
        };
        // SAFETY: attr points at live buffers (prog, license, log) for the
        // duration of the call, and its size is passed exactly.
        unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const _, std::mem::size_of::<ProgLoadAttr>()) }
    };
    // Without a log: a verifier log that outgrows its buffer fails the load (ENOSPC).
    let fd = load(&mut []);
    if fd < 0 {
        let err = io::Error::last_os_error();
        let mut log = vec![0u8; 1 << 20];
        load(&mut log);
        let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned();
        let tail: String = text.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(io::Error::new(err.kind(), format!("load device filter: {err}: {tail}")));
    }
    // SAFETY: the kernel just returned this fd to us; we own it.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attach = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: attr is a plain struct on our stack, its size passed exactly.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, &attach as *const _, std::mem::size_of::<ProgAttachAttr>()) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("attach device filter: {err}")));
    }
    // The attachment holds its own reference to the program: prog_fd can close.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `compile` emits, so the filter's
    /// decisions can be checked without the kernel.
    fn run(prog: &[Insn], kind: i32, access: i32, major: i32, minor: i32) -> i32 {
        let mut r = [0i64; 11];
        let ctx = [((access << 16) | kind) as i64, major as i64, minor as i64];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[(i.off / 4) as usize],
                AND32_K => r[dst] &= i.imm as i64,
                RSH32_K => r[dst] >>= i.imm,
                MOV32_X => r[dst] = r[src],
                MOV32_K => r[dst] = i.imm as i64,
                JNE_K if r[dst] != i.imm as i64 => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 => pc += i.off as usize,
                JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JNE_K | JEQ_K | JNE_X => {}
                EXIT => return r[0] as i32,
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    fn rule(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        DeviceRule { allow, kind, major, minor, access: access.into() }
    }

    #[test]
    fn compile_denies_by_default_and_allows_listed() {
        let rules = vec![rule(false, 'a', None, None, "rwm"), rule(true, 'c', Some(1), Some(3), "rwm")];
        let p = compile(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn compile_later_rule_overrides_earlier() {
        let rules = vec![rule(true, 'c', Some(1), None, "rwm"), rule(false, 'c', Some(1), Some(3), "w")];
        let p = compile(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 1);
    }

    #[test]
    fn compile_partial_access_allow() {
        let p = compile(&[rule(true, 'c', Some(5), Some(1), "r")]);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 5, 1), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 5, 1), 0);
    }

    #[test]
    fn compile_stops_at_catch_all() {
        let p = compile(&[rule(true, 'c', Some(1), Some(3), "rwm"), rule(true, 'a', None, None, "rwm")]);
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1);
        // prologue (6) + one block (2)
        assert_eq!(p.len(), 8);
    }
}
