//! A classic-BPF interpreter for seccomp programs, with the kernel's rules for stacked
//! filters. Used by the tests (golden programs, differential tests against libseccomp) and
//! meant for a fuzz target.
#![cfg_attr(not(test), allow(dead_code))]

use super::compile::Insn;

/// The kernel's `struct seccomp_data`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 32-bit word at byte offset `off`, as `BPF_LD|BPF_W|BPF_ABS` loads it (native,
    /// little-endian layout).
    fn word(&self, off: u32) -> Option<u32> {
        if off % 4 != 0 {
            return None;
        }
        let w = match off {
            0 => self.nr as u32,
            4 => self.arch,
            8 => self.instruction_pointer as u32,
            12 => (self.instruction_pointer >> 32) as u32,
            16..=63 => {
                let a = *self.args.get(((off - 16) / 8) as usize)?;
                if (off - 16) % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => return None,
        };
        Some(w)
    }
}

/// Why a program could not be run (the kernel's checker would have refused it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InterpError {
    /// Unknown or forbidden opcode at this pc.
    BadInsn(usize),
    /// A load outside `seccomp_data` or a misaligned one.
    BadLoad(usize),
    /// A jump or fall-through past the end.
    OutOfBounds(usize),
    /// Division by zero.
    DivZero(usize),
}

// Opcode fields, <linux/bpf_common.h>.
const fn class(c: u16) -> u16 {
    c & 0x07
}
const fn size(c: u16) -> u16 {
    c & 0x18
}
const fn mode(c: u16) -> u16 {
    c & 0xe0
}
const fn op(c: u16) -> u16 {
    c & 0xf0
}
const fn src(c: u16) -> u16 {
    c & 0x08
}

/// Runs `prog` on `data` and returns the 32-bit filter result.
pub(crate) fn run(prog: &[Insn], data: &SeccompData) -> Result<u32, InterpError> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc).ok_or(InterpError::OutOfBounds(pc))?;
        let c = i.code;
        match class(c) {
            // BPF_LD / BPF_LDX
            0x00 | 0x01 => {
                let v = match (mode(c), size(c)) {
                    (0x20, 0x00) => data.word(i.k).ok_or(InterpError::BadLoad(pc))?, // ABS W
                    (0x00, 0x00) => i.k,                                             // IMM
                    (0x60, 0x00) => *mem.get(i.k as usize).ok_or(InterpError::BadLoad(pc))?, // MEM
                    (0x80, 0x00) => 64, // LEN: sizeof(struct seccomp_data)
                    _ => return Err(InterpError::BadInsn(pc)),
                };
                if class(c) == 0x00 { a = v } else { x = v }
            }
            // BPF_ST / BPF_STX
            0x02 | 0x03 => {
                let slot = mem.get_mut(i.k as usize).ok_or(InterpError::BadLoad(pc))?;
                *slot = if class(c) == 0x02 { a } else { x };
            }
            // BPF_ALU
            0x04 => {
                let operand = if src(c) == 0x08 { x } else { i.k };
                a = match op(c) {
                    0x00 => a.wrapping_add(operand),
                    0x10 => a.wrapping_sub(operand),
                    0x20 => a.wrapping_mul(operand),
                    0x30 => a.checked_div(operand).ok_or(InterpError::DivZero(pc))?,
                    0x40 => a | operand,
                    0x50 => a & operand,
                    0x60 => a.checked_shl(operand).unwrap_or(0),
                    0x70 => a.checked_shr(operand).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(operand).ok_or(InterpError::DivZero(pc))?,
                    0xa0 => a ^ operand,
                    _ => return Err(InterpError::BadInsn(pc)),
                };
            }
            // BPF_JMP
            0x05 => {
                let operand = if src(c) == 0x08 { x } else { i.k };
                let next = pc + 1;
                pc = match op(c) {
                    0x00 => next + i.k as usize,
                    0x10 => next + usize::from(if a == operand { i.jt } else { i.jf }),
                    0x20 => next + usize::from(if a > operand { i.jt } else { i.jf }),
                    0x30 => next + usize::from(if a >= operand { i.jt } else { i.jf }),
                    0x40 => next + usize::from(if a & operand != 0 { i.jt } else { i.jf }),
                    _ => return Err(InterpError::BadInsn(pc)),
                };
                continue;
            }
            // BPF_RET
            0x06 => {
                return match c & 0x18 {
                    0x00 => Ok(i.k), // K
                    0x10 => Ok(a),   // A
                    _ => Err(InterpError::BadInsn(pc)),
                };
            }
            // BPF_MISC
            _ => match c & 0xf8 {
                0x00 => x = a, // TAX
                0x80 => a = x, // TXA
                _ => return Err(InterpError::BadInsn(pc)),
            },
        }
        pc += 1;
    }
}

/// The result of a stack of filters, as the kernel computes it: every filter runs (the last
/// installed first) and the return value with the most restrictive action wins; on a tie the
/// first evaluated (the most recently installed) wins. `progs` is in installation order.
pub(crate) fn run_stack<'a>(
    progs: impl DoubleEndedIterator<Item = &'a [Insn]>,
    data: &SeccompData,
) -> Result<u32, InterpError> {
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for p in progs.rev() {
        let cur = run(p, data)?;
        if ((cur & libc::SECCOMP_RET_ACTION_FULL) as i32)
            < ((ret & libc::SECCOMP_RET_ACTION_FULL) as i32)
        {
            ret = cur;
        }
    }
    Ok(ret)
}
