//! Where the socket fields socket mode reads sit in the running kernel's
//! structs, from its BTF (`/sys/kernel/btf/vmlinux`).
//!
//! aya has no CO-RE relocations for program code written in Rust (aya
//! issue 349): the XDP program cannot name `tcp_sock.rcv_nxt` and let the
//! loader fix the offset. So the loader resolves each field here and hands
//! the offsets to the program as a read-only global (`SOCK_FIELDS`), which
//! the kernel freezes: the verifier then knows every offset and checks each
//! load against the struct's BTF, as it would a CO-RE load.
//!
//! The BTF is parsed with the `btf` crate (MIT): aya's own parser keeps
//! struct members private, and `btf-rs` is LGPL, which does not go into a
//! static binary as freely as the rest of rstguard.

use std::path::Path;

use btf::{Btf, FlattenedType, Type};
use rstguard_common::judge::socket::{ByteField, SockFields};

/// The kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Why the fields could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("the kernel has no BTF ({VMLINUX} is missing: a kernel built without CONFIG_DEBUG_INFO_BTF)")]
    Missing,
    #[error("cannot read the kernel's BTF at {VMLINUX}: {0}")]
    Unreadable(String),
    #[error("the kernel's BTF has no {0}")]
    NoField(String),
    #[error("the kernel's {field} is {found}, where socket mode reads {wanted}")]
    Shape {
        field: String,
        found: String,
        wanted: &'static str,
    },
}

/// Where a member sits: its offset in bits from the start of the outer
/// struct, its bitfield width (0: not a bitfield), and its type's size in
/// bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    bit_offset: u32,
    bitfield: u32,
    bits: u32,
}

/// Resolves every field socket mode reads from the BTF at `path`.
pub fn sock_fields_from(path: &Path) -> Result<SockFields, BtfError> {
    if !path.exists() {
        return Err(BtfError::Missing);
    }
    let btf = Btf::from_file(path).map_err(|e| BtfError::Unreadable(e.to_string()))?;
    sock_fields(&btf)
}

/// Resolves every field socket mode reads from `btf`.
fn sock_fields(btf: &Btf) -> Result<SockFields, BtfError> {
    let u32_at = |s: &str, path: &str| u32_field(btf, s, path);
    let byte_at = |s: &str, path: &str| byte_field(btf, s, path);
    let sacks = member(btf, "tcp_sock", "selective_acks")?;
    let (stride, blocks) = array_of(btf, "tcp_sock", "selective_acks")?;
    if blocks < 4 {
        return Err(BtfError::Shape {
            field: "tcp_sock.selective_acks".into(),
            found: format!("{blocks} blocks"),
            wanted: "4 blocks",
        });
    }
    let end_seq = member(btf, "tcp_sack_block", "end_seq")?;
    Ok(SockFields {
        enabled: 1,
        rcv_nxt: u32_at("tcp_sock", "rcv_nxt")?,
        rcv_wup: u32_at("tcp_sock", "rcv_wup")?,
        rcv_wnd: u32_at("tcp_sock", "rcv_wnd")?,
        snd_una: u32_at("tcp_sock", "snd_una")?,
        // SYN_SENT's SND.NXT as the kernel will judge (see `Sock::snd_nxt`).
        write_seq: u32_at("tcp_sock", "write_seq")?,
        rcv_queue_len: u32_at("tcp_sock", "inet_conn.icsk_inet.sk.sk_receive_queue.qlen")?,
        sack_end: (sacks.bit_offset + end_seq.bit_offset) / 8,
        sack_stride: stride,
        num_sacks: byte_at("tcp_sock", "rx_opt.num_sacks")?,
        sack_ok: byte_at("tcp_sock", "rx_opt.sack_ok")?,
        // A macro for a sock_common field in every kernel since 4.x.
        tw_rcv_nxt: u32_at("tcp_timewait_sock", "tw_sk.__tw_common.skc_tw_rcv_nxt")?,
        tw_rcv_wnd: u32_at("tcp_timewait_sock", "tw_rcv_wnd")?,
        tw_substate: byte_at("tcp_timewait_sock", "tw_sk.tw_substate")?,
        req_rcv_nxt: u32_at("tcp_request_sock", "rcv_nxt")?,
        req_snt_isn: u32_at("tcp_request_sock", "snt_isn")?,
        // `rsk_rcv_wnd` is a macro for this one.
        req_rcv_wnd: u32_at("tcp_request_sock", "req.req.__req_common.skc_rcv_wnd")?,
        rcv_tstamp: u32_at("tcp_sock", "rcv_tstamp")?,
        // Measured by the caller.
        hz: 0,
    })
}

/// The struct named `name`.
fn struct_named<'a>(btf: &'a Btf, name: &str) -> Result<&'a FlattenedType, BtfError> {
    btf.get_types()
        .iter()
        .find(|t| t.name.as_deref() == Some(name) && matches!(t.base_type, Type::Struct(_)))
        .ok_or_else(|| BtfError::NoField(format!("struct {name}")))
}

/// The member at dotted `path` of struct `outer`, looking through anonymous
/// structs and unions as C does.
fn member(btf: &Btf, outer: &str, path: &str) -> Result<Member, BtfError> {
    let missing = || BtfError::NoField(format!("{outer}.{path}"));
    let mut ty = struct_named(btf, outer)?;
    let mut offset = 0;
    let mut found = None;
    for name in path.split('.') {
        let (m, t) = find_member(btf, ty, name).ok_or_else(missing)?;
        offset += m.bit_offset;
        found = Some(Member {
            bit_offset: offset,
            ..m
        });
        ty = t;
    }
    found.ok_or_else(missing)
}

/// Member `name` of `ty` (a struct or union), searching anonymous members
/// too: where it sits in `ty`, and its type.
fn find_member<'a>(
    btf: &'a Btf,
    ty: &FlattenedType,
    name: &str,
) -> Option<(Member, &'a FlattenedType)> {
    let members = match &ty.base_type {
        Type::Struct(s) | Type::Union(s) => &s.members,
        _ => return None,
    };
    for m in members {
        let mt = btf.get_type_by_id(m.type_id).ok()?;
        let here = Member {
            bit_offset: m.offset,
            bitfield: m.bits.unwrap_or(0),
            bits: mt.bits,
        };
        match m.name.as_deref() {
            Some(n) if n == name => return Some((here, mt)),
            None | Some("") => {
                if let Some((inner, t)) = find_member(btf, mt, name) {
                    return Some((
                        Member {
                            bit_offset: here.bit_offset + inner.bit_offset,
                            ..inner
                        },
                        t,
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// The element size (bytes) and length of the array member at `path`.
fn array_of(btf: &Btf, outer: &str, path: &str) -> Result<(u32, u32), BtfError> {
    let mut ty = struct_named(btf, outer)?;
    for name in path.split('.') {
        ty = find_member(btf, ty, name)
            .ok_or_else(|| BtfError::NoField(format!("{outer}.{path}")))?
            .1;
    }
    match &ty.base_type {
        Type::Array(a) => {
            let elem = btf
                .get_type_by_id(a.elem_type_id)
                .map_err(|e| BtfError::Unreadable(e.to_string()))?;
            Ok((elem.bits / 8, a.num_elements))
        }
        _ => Err(BtfError::Shape {
            field: format!("{outer}.{path}"),
            found: "not an array".into(),
            wanted: "an array",
        }),
    }
}

/// The byte offset of a 32-bit member.
fn u32_field(btf: &Btf, outer: &str, path: &str) -> Result<u32, BtfError> {
    let m = member(btf, outer, path)?;
    if m.bitfield != 0 || m.bits != 32 || m.bit_offset % 32 != 0 {
        return Err(BtfError::Shape {
            field: format!("{outer}.{path}"),
            found: describe(&m),
            wanted: "an aligned 32-bit integer",
        });
    }
    Ok(m.bit_offset / 8)
}

/// Where a member that fits in one byte sits (a byte, or a bitfield that
/// does not cross a byte).
fn byte_field(btf: &Btf, outer: &str, path: &str) -> Result<ByteField, BtfError> {
    let m = member(btf, outer, path)?;
    let width = if m.bitfield != 0 { m.bitfield } else { m.bits };
    let shift = m.bit_offset % 8;
    if width == 0 || shift + width > 8 {
        return Err(BtfError::Shape {
            field: format!("{outer}.{path}"),
            found: describe(&m),
            wanted: "a field within one byte",
        });
    }
    Ok(ByteField {
        byte: m.bit_offset / 8,
        shift: shift as u8,
        mask: ((1u16 << width) - 1) as u8,
        _pad: [0; 2],
    })
}

fn describe(m: &Member) -> String {
    if m.bitfield != 0 {
        format!("a {}-bit bitfield at bit {}", m.bitfield, m.bit_offset)
    } else {
        format!("a {}-bit value at bit {}", m.bits, m.bit_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's own BTF, where it has one (every kernel
    /// rstguard supports is built with it by the major distributions).
    #[test]
    fn resolves_every_field_from_the_running_kernel() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            eprintln!("no {VMLINUX}: nothing to check here");
            return;
        }
        let f = sock_fields_from(path).expect("resolving the socket fields");
        assert_eq!(f.enabled, 1);
        // Fields of one struct are distinct, inside it, and 4-aligned.
        let tcp = [f.rcv_nxt, f.rcv_wup, f.rcv_wnd, f.snd_una, f.write_seq];
        for (i, a) in tcp.iter().enumerate() {
            assert_eq!(a % 4, 0);
            assert!(tcp[i + 1..].iter().all(|b| b != a), "{f:?}");
        }
        assert_eq!(f.sack_stride, 8, "struct tcp_sack_block is two u32");
        assert!(f.sack_ok.mask != 0 && f.num_sacks.mask == 0xff, "{f:?}");
        assert_eq!(f.tw_substate.mask, 0xff);
        assert_ne!(f.req_rcv_nxt, f.req_snt_isn);
    }

    #[test]
    fn a_missing_file_says_what_the_kernel_lacks() {
        let err = sock_fields_from(Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(err.to_string().contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
    }
}
