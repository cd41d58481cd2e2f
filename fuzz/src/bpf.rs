//! An independent classic-BPF interpreter for seccomp programs, written from the kernel's
//! rules (`kernel/seccomp.c`: `seccomp_check_filter`, `seccomp_run_filters`;
//! `net/core/filter.c`: `bpf_check_classic`). It is the fuzz targets' oracle for what a
//! compiled [`ringfence::CompiledProfile`] does, kept apart from the library's own
//! interpreter on purpose: two implementations that agree are worth more than one.

use ringfence::seccomp::Insn;

/// The kernel's `struct seccomp_data`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    /// The syscall number (an `int` in the kernel; kept as its 32 bits here).
    pub nr: u32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// The instruction pointer.
    pub instruction_pointer: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

/// `sizeof(struct seccomp_data)`.
pub const DATA_LEN: u32 = 64;

impl SeccompData {
    /// The 32-bit word a `BPF_LD|BPF_W|BPF_ABS` at byte offset `k` loads (little-endian).
    fn load(&self, k: u32) -> Option<u32> {
        if k % 4 != 0 || k >= DATA_LEN {
            return None;
        }
        let mut bytes = [0u8; DATA_LEN as usize];
        bytes[0..4].copy_from_slice(&self.nr.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.instruction_pointer.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let k = k as usize;
        Some(u32::from_le_bytes(bytes[k..k + 4].try_into().ok()?))
    }
}

/// Why the kernel would refuse a program (or, for a program that passed, why it failed to
/// run: that would be an interpreter bug, since the checks are static).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Empty or longer than `BPF_MAXINSNS`.
    Length(usize),
    /// An opcode seccomp does not allow, at this index.
    Opcode(usize, u16),
    /// A jump out of the program, at this index.
    Jump(usize),
    /// A load outside `seccomp_data` or misaligned, or a scratch slot out of range.
    Load(usize),
    /// Division by a constant zero.
    DivZero(usize),
    /// The last instruction is not a return.
    NoReturn,
}

const BPF_MAXINSNS: usize = 4096;

// Classes, sizes, modes, ops and sources of <linux/bpf_common.h>.
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const K: u16 = 0x00;
const X: u16 = 0x08;
const A: u16 = 0x10;

/// The kernel's static checks: every opcode is one seccomp allows (`seccomp_check_filter`'s
/// list: no `BPF_MOD`, no packet loads), every jump lands inside the program, every load is an
/// aligned word of `seccomp_data`, the last instruction returns (`bpf_check_classic`).
pub fn check(prog: &[Insn]) -> Result<(), Refused> {
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(Refused::Length(prog.len()));
    }
    for (pc, i) in prog.iter().enumerate() {
        // Instructions after this one: a jump of `rest` or more leaves the program.
        let rest = prog.len() - pc - 1;
        let c = i.code;
        match c & 0x07 {
            LD | LDX => match c & !0x01 {
                x if x == LD | W | ABS && c & 0x07 == LD => {
                    if i.k % 4 != 0 || i.k >= DATA_LEN {
                        return Err(Refused::Load(pc));
                    }
                }
                x if x == LD | W | LEN || x == LD | IMM => {}
                x if x == LD | MEM => {
                    if i.k >= 16 {
                        return Err(Refused::Load(pc));
                    }
                }
                _ => return Err(Refused::Opcode(pc, c)),
            },
            ST | STX => {
                if c & !0x07 != 0 {
                    return Err(Refused::Opcode(pc, c));
                }
                if i.k >= 16 {
                    return Err(Refused::Load(pc));
                }
            }
            ALU => {
                let op = c & 0xf0;
                let allowed = match op {
                    0x00 | 0x10 | 0x20 | 0x30 | 0x40 | 0x50 | 0x60 | 0x70 | 0xa0 => {
                        c & !(0xf0 | X | 0x07) == 0
                    }
                    0x80 => c == ALU | 0x80,
                    _ => false,
                };
                if !allowed {
                    return Err(Refused::Opcode(pc, c));
                }
                if c & X == 0 && op == 0x30 && i.k == 0 {
                    return Err(Refused::DivZero(pc));
                }
                if c & X == 0 && matches!(op, 0x60 | 0x70) && i.k >= 32 {
                    return Err(Refused::Opcode(pc, c));
                }
            }
            JMP => {
                let op = c & 0xf0;
                if op == 0x00 {
                    if c != JMP || i.k as usize >= rest {
                        return Err(Refused::Jump(pc));
                    }
                } else {
                    if !matches!(op, 0x10..=0x40) || c & !(0xf0 | X | 0x07) != 0 {
                        return Err(Refused::Opcode(pc, c));
                    }
                    if usize::from(i.jt) >= rest || usize::from(i.jf) >= rest {
                        return Err(Refused::Jump(pc));
                    }
                }
            }
            RET => {
                if c != RET | K && c != RET | A {
                    return Err(Refused::Opcode(pc, c));
                }
            }
            _ => {
                if c != MISC && c != MISC | 0x80 {
                    return Err(Refused::Opcode(pc, c));
                }
            }
        }
    }
    let last = prog[prog.len() - 1].code;
    if last != RET | K && last != RET | A {
        return Err(Refused::NoReturn);
    }
    Ok(())
}

/// Runs a program that passed [`check`] on `data`; returns the filter's 32-bit result.
pub fn run(prog: &[Insn], data: &SeccompData) -> Result<u32, Refused> {
    check(prog)?;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let c = i.code;
        match c & 0x07 {
            LD | LDX => {
                let v = match c & 0xe0 {
                    ABS => data.load(i.k).ok_or(Refused::Load(pc))?,
                    IMM => i.k,
                    MEM => mem[i.k as usize],
                    LEN => DATA_LEN,
                    _ => return Err(Refused::Opcode(pc, c)),
                };
                if c & 0x07 == LD {
                    a = v;
                } else {
                    x = v;
                }
            }
            ST => mem[i.k as usize] = a,
            STX => mem[i.k as usize] = x,
            ALU => {
                let b = if c & X != 0 { x } else { i.k };
                a = match c & 0xf0 {
                    0x00 => a.wrapping_add(b),
                    0x10 => a.wrapping_sub(b),
                    0x20 => a.wrapping_mul(b),
                    // The kernel returns 0 from the filter on a division by a zero X.
                    0x30 => match a.checked_div(b) {
                        Some(v) => v,
                        None => return Ok(0),
                    },
                    0x40 => a | b,
                    0x50 => a & b,
                    0x60 => {
                        if b >= 32 {
                            0
                        } else {
                            a << b
                        }
                    }
                    0x70 => {
                        if b >= 32 {
                            0
                        } else {
                            a >> b
                        }
                    }
                    0x80 => a.wrapping_neg(),
                    0xa0 => a ^ b,
                    _ => return Err(Refused::Opcode(pc, c)),
                };
            }
            JMP => {
                let b = if c & X != 0 { x } else { i.k };
                let taken = |t: bool| usize::from(if t { i.jt } else { i.jf });
                pc += 1 + match c & 0xf0 {
                    0x00 => i.k as usize,
                    0x10 => taken(a == b),
                    0x20 => taken(a > b),
                    0x30 => taken(a >= b),
                    0x40 => taken(a & b != 0),
                    _ => return Err(Refused::Opcode(pc, c)),
                };
                continue;
            }
            RET => return Ok(if c & A == A { a } else { i.k }),
            _ => {
                if c & 0x80 != 0 {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
        pc += 1;
    }
}

/// `SECCOMP_RET_ACTION_FULL`.
pub const RET_ACTION_FULL: u32 = 0xffff_0000;
/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;

/// The kernel's rule for stacked filters: every filter runs, the most recently installed
/// first, and the result whose action (`ret & SECCOMP_RET_ACTION_FULL`, compared as a signed
/// 32-bit number) is lowest wins; on a tie the one seen first stays.
pub fn combine(results_newest_first: impl IntoIterator<Item = u32>) -> u32 {
    let mut ret = RET_ALLOW;
    for cur in results_newest_first {
        if ((cur & RET_ACTION_FULL) as i32) < ((ret & RET_ACTION_FULL) as i32) {
            ret = cur;
        }
    }
    ret
}

/// Runs a stack of programs given in installation order.
pub fn run_stack<'a>(
    progs: impl DoubleEndedIterator<Item = &'a [Insn]>,
    data: &SeccompData,
) -> Result<u32, Refused> {
    let mut results = Vec::new();
    for p in progs.rev() {
        results.push(run(p, data)?);
    }
    Ok(combine(results))
}
