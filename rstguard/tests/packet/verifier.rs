//! How many instructions the verifier walks for a program, on any kernel.
//!
//! Kernels from 5.16 report it in the program's info. Before that it is
//! only in the verifier's statistics (`BPF_LOG_STATS`), which aya does not
//! keep for a program that loads. There, the program is loaded once more
//! by hand: the object parsed and relocated with aya-obj against maps aya
//! created for it, loaded with `BPF_PROG_LOAD` asking for the statistics,
//! and the count read from "processed N insns". Without the object's BTF
//! function records, its BPF-to-BPF calls (memset) are verified inline,
//! as static functions; for the margin that errs on the high side.

use std::{
    collections::HashSet,
    ffi::CString,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
};

use aya::{
    maps::Map,
    programs::{ProgramInfo, ProgramType},
    EbpfLoader,
};
use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_type};
use rstguard::{ebpf, kernel};
use rstguard_common::{
    layout::{self, PROG_TC, PROG_XDP},
    Level,
};

use crate::harness::*;

/// Instructions the verifier walked for `name`, whose loaded program's
/// info is `info`: what the kernel reports (5.16 on), and what its
/// verifier's statistics say for the same program loaded by hand (every
/// kernel; so the way older kernels are measured is itself tested on
/// newer ones).
pub fn walked(name: &str, info: &ProgramInfo) -> (Option<u64>, u64) {
    (
        info.verified_instruction_count().map(u64::from),
        walked_by_stats(name),
    )
}

fn map_fd(map: &Map) -> i32 {
    let data = match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::LpmTrie(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuHashMap(d)
        | Map::RingBuf(d) => d,
        other => panic!("a map type rstguard does not use: {other:?}"),
    };
    data.fd().as_fd().as_raw_fd()
}

/// Loads `name` from the object with the verifier's statistics requested
/// and returns its count.
pub fn walked_by_stats(name: &str) -> u64 {
    let object =
        kernel::rewrite_helpers(ebpf::object(), &kernel::needed_rewrites()).expect("the object");
    let bytes = object.bytes();
    // The maps, created by aya as for the real load.
    let ebpf = EbpfLoader::new()
        .map_max_entries(layout::FLOWS, 1024)
        .load(bytes)
        .expect("creating the object's maps");
    let mut obj = aya_obj::Object::parse(bytes).expect("parsing the object");
    let defs = obj.maps.clone();
    let fds: Vec<(String, i32)> = ebpf
        .maps()
        .map(|(n, m)| (n.to_string(), map_fd(m)))
        .collect();
    let text: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(
        fds.iter()
            .map(|(n, fd)| (n.as_str(), *fd, &defs[n.as_str()])),
        &text,
    )
    .expect("relocating map references");
    obj.relocate_calls(&text).expect("relocating calls");
    let program = &obj.programs[name];
    let insns = &obj.functions[&program.function_key()].instructions;
    let prog_type = match ebpf.program(name).expect("the program").prog_type() {
        ProgramType::Xdp => bpf_prog_type::BPF_PROG_TYPE_XDP,
        ProgramType::SchedClassifier => bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS,
        other => panic!("{name} is a {other:?} program"),
    };

    let license = CString::new("GPL").expect("no NUL");
    let mut log = vec![0u8; 64 * 1024];
    // SAFETY: bpf_attr is plain data; all zero is its default.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the union's BPF_PROG_LOAD member, as the command below reads.
    let u = unsafe { &mut attr.__bindgen_anon_3 };
    u.prog_type = prog_type as u32;
    u.insn_cnt = insns.len() as u32;
    u.insns = insns.as_ptr() as u64;
    u.license = license.as_ptr() as u64;
    u.log_level = 4; // BPF_LOG_STATS
    u.log_size = log.len() as u32;
    u.log_buf = log.as_mut_ptr() as u64;
    // SAFETY: attr is a valid BPF_PROG_LOAD attribute whose pointers
    // (instructions, license, log) outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_PROG_LOAD as i32,
            &attr as *const bpf_attr,
            std::mem::size_of::<bpf_attr>() as u32,
        )
    };
    let log =
        String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned();
    assert!(
        fd >= 0,
        "{name}: loading it for the verifier's statistics failed ({}):\n{log}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new file descriptor the kernel just returned.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    log.lines()
        .find_map(|l| l.strip_prefix("processed "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name}: no \"processed N insns\" in the verifier's log:\n{log}"))
}

#[test]
fn the_programs_stay_far_inside_the_verifiers_limits() {
    let mut h = Harness::new(Level::Strict);
    let xdp = h.loaded.xdp().expect("xdp").info().expect("program info");
    let tc = h.loaded.tc().expect("tc").info().expect("program info");
    for (name, info) in [(PROG_XDP, xdp), (PROG_TC, tc)] {
        let (reported, by_stats) = walked(name, &info);
        let size = info.size_translated().unwrap_or(0) / 8;
        eprintln!(
            "{name}: the verifier walked {} instructions (its statistics, loaded by hand: {by_stats}); \
             {size} instructions loaded",
            reported.map_or("an unreported number of".to_string(), |n| n.to_string())
        );
        // The limit is 1,000,000 instructions walked; today each program
        // takes about 50,000. Fail at a quarter of the limit, long before
        // new code could creep up to it. The size (about 4,100 instructions
        // each, with SipHash for IPv6 flow keys inlined) is far from the
        // privileged limit of a million; 8,192 catches runaway inlining.
        for verified in reported.into_iter().chain([by_stats]) {
            assert!(verified < 250_000, "{name}: {verified} instructions walked");
        }
        assert!(size < 8192, "{name}: {size} instructions");
    }
    // With socket mode on, its code is walked too (off, it is dead code
    // the verifier never walks).
    let fields = rstguard::socket::prepare().expect("socket mode is available here");
    let Some(mut on) = with_socket_mode(
        Level::Strict,
        &rstguard::ebpf::LoadOptions {
            sock_fields: fields,
            ..rstguard::ebpf::LoadOptions::default()
        },
    ) else {
        return;
    };
    let info = on.loaded.xdp().expect("xdp").info().expect("program info");
    let size = info.size_translated().unwrap_or(0) / 8;
    match info.verified_instruction_count() {
        Some(walked) => {
            eprintln!("{PROG_XDP} (socket mode): the verifier walked {walked} instructions; {size} loaded");
            assert!(
                walked < 250_000,
                "socket mode: {walked} instructions walked"
            );
        }
        None => eprintln!("{PROG_XDP} (socket mode): this kernel reports no count; {size} loaded"),
    }
    assert!(size < 8192, "socket mode: {size} instructions");
}
