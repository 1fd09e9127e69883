//! The running kernel: the oldest one rstguard runs on, what a newer one
//! adds, and the object adjusted to the one it runs on.
//!
//! The programs are built once and loaded everywhere from 5.10 on. Where a
//! helper they call came later than 5.10, the loader probes for it and, when
//! the kernel lacks it, rewrites each call to an older helper that does the
//! same work, before the object is loaded (libbpf does the same for
//! `bpf_probe_read_kernel` on kernels that lack it). Today that is one
//! helper: `bpf_ktime_get_coarse_ns` (5.11), replaced by `bpf_ktime_get_ns`
//! (4.1), the same monotonic clock read precisely, at a few more
//! nanoseconds per read.

use aya::{
    programs::ProgramType,
    sys::{is_helper_supported, BpfHelper},
    util::KernelVersion,
};
use object::{Object as _, ObjectSection as _, SectionFlags};

use crate::error::Error;

/// The oldest kernel rstguard runs on (and is tested on: `cargo xtask test
/// --kernel 5.10`). What it needs: bounded loops (5.3), BPF ring buffers
/// (5.8) and XDP links, which detach with the daemon (5.9).
pub const FLOOR: KernelVersion = KernelVersion::new(5, 10, 0);

/// Refuses kernels older than [`FLOOR`], in words an operator can act on.
pub fn check(current: KernelVersion) -> Result<(), Error> {
    if current < FLOOR {
        return Err(Error::OldKernel {
            found: current.to_string(),
            floor: "5.10",
        });
    }
    Ok(())
}

/// Whether the egress classifier attaches through TCX (6.6 and later; a
/// clsact qdisc before).
pub fn has_tcx() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// The running kernel's release, as `uname -r` prints it (for messages).
pub fn release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "(unknown)".to_string())
}

/// `BPF_JMP | BPF_CALL`: a call; `src_reg` 0 makes it a helper call (1 is
/// a call to a BPF function, 2 to a kernel function).
const CALL: u8 = 0x85;
/// Helper ids (`enum bpf_func_id`, include/uapi/linux/bpf.h).
const KTIME_GET_NS: i32 = 5;
const KTIME_GET_COARSE_NS: i32 = 160;

/// Helpers newer than [`FLOOR`] that the programs call, and what replaces
/// each where the kernel lacks it.
const REPLACEMENTS: &[(BpfHelper, i32, i32)] = &[(
    BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
    KTIME_GET_COARSE_NS,
    KTIME_GET_NS,
)];

/// Helper-call rewrites the running kernel needs: `(from, to)` helper ids.
pub fn needed_rewrites() -> Vec<(i32, i32)> {
    REPLACEMENTS
        .iter()
        .filter(|(helper, _, _)| {
            // A probe that cannot run (no privileges) says nothing: keep the
            // call, and let the verifier speak if it must.
            !is_helper_supported(ProgramType::Xdp, *helper).unwrap_or(true)
        })
        .map(|&(_, from, to)| (from, to))
        .collect()
}

/// An ELF object's bytes, 8-byte aligned as the ELF parser wants them (it
/// reads headers in place and checks their alignment).
pub enum ObjectBytes<'a> {
    /// The object as built (`include_bytes_aligned!`).
    AsBuilt(&'a [u8]),
    /// A rewritten copy: the words, and the length in bytes.
    Rewritten(Vec<u64>, usize),
}

impl ObjectBytes<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            ObjectBytes::AsBuilt(b) => b,
            ObjectBytes::Rewritten(words, len) => {
                // SAFETY: u8 has no alignment and no invalid values; the
                // slice lies inside `words`, whose bytes are initialised.
                unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len) }
            }
        }
    }
}

/// `object` with every helper call `from` rewritten to `to`, for each
/// `(from, to)` in `rewrites`; `object` itself when there is nothing to do.
pub fn rewrite_helpers<'a>(
    object: &'a [u8],
    rewrites: &[(i32, i32)],
) -> Result<ObjectBytes<'a>, Error> {
    if rewrites.is_empty() {
        return Ok(ObjectBytes::AsBuilt(object));
    }
    let file = object::File::parse(object).map_err(|e| Error::BadObject(e.to_string()))?;
    let mut words = vec![0u64; object.len().div_ceil(8)];
    for (w, chunk) in words.iter_mut().zip(object.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    // SAFETY: as in `bytes`, mutably: `words` is ours and holds
    // `object.len()` bytes or more.
    let patched =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), object.len()) };
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            continue;
        };
        if sh_flags & u64::from(object::elf::SHF_EXECINSTR) == 0 {
            continue;
        }
        let Some((start, size)) = section.file_range() else {
            continue;
        };
        let (start, size) = (start as usize, size as usize);
        for insn in patched[start..start + size].chunks_exact_mut(8) {
            if insn[0] != CALL || insn[1] >> 4 != 0 {
                continue;
            }
            let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            if let Some(&(_, to)) = rewrites.iter().find(|(from, _)| *from == imm) {
                insn[4..8].copy_from_slice(&to.to_le_bytes());
            }
        }
    }
    Ok(ObjectBytes::Rewritten(words, object.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_before_the_floor_are_refused_in_plain_words() {
        assert!(check(KernelVersion::new(6, 18, 0)).is_ok());
        assert!(check(KernelVersion::new(5, 10, 0)).is_ok());
        let err = check(KernelVersion::new(5, 4, 284))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Linux 5.4.284") && err.contains("5.10"),
            "{err}"
        );
        assert!(!err.contains("KernelVersion"), "{err}");
    }

    /// The real object: every coarse-clock call becomes a precise one, and
    /// nothing else changes.
    #[test]
    fn the_coarse_clock_is_rewritten_and_nothing_else() {
        let object = crate::ebpf::object();
        if object.is_empty() {
            eprintln!("built with AYA_BUILD_SKIP: no object to check");
            return;
        }
        let calls = |bytes: &[u8], id: i32| -> usize {
            let file = object::File::parse(bytes).expect("an ELF object");
            file.sections()
                .filter(|s| {
                    matches!(s.flags(), SectionFlags::Elf { sh_flags }
                        if sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0)
                })
                .map(|s| {
                    s.data()
                        .expect("section data")
                        .chunks_exact(8)
                        .filter(|i| {
                            i[0] == CALL
                                && i[1] >> 4 == 0
                                && i32::from_le_bytes([i[4], i[5], i[6], i[7]]) == id
                        })
                        .count()
                })
                .sum()
        };
        let coarse = calls(object, KTIME_GET_COARSE_NS);
        let precise = calls(object, KTIME_GET_NS);
        let patched = rewrite_helpers(object, &[(KTIME_GET_COARSE_NS, KTIME_GET_NS)]).unwrap();
        assert!(matches!(patched, ObjectBytes::Rewritten(..)));
        assert_eq!(calls(patched.bytes(), KTIME_GET_COARSE_NS), 0);
        assert_eq!(calls(patched.bytes(), KTIME_GET_NS), precise + coarse);
        let changed = object
            .iter()
            .zip(patched.bytes())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, coarse, "one byte per rewritten call");
        assert!(matches!(
            rewrite_helpers(object, &[]).unwrap(),
            ObjectBytes::AsBuilt(_)
        ));
    }
}
