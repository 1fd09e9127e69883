//! `rstguard-bench` (run by `cargo xtask bench`): rstguard's performance,
//! measured against baselines in the same run. Prints tables, and with
//! `--write FILE` writes them as Markdown (BENCHMARKS.md). Needs root.

mod cost;
mod flood;
mod frames;
mod report;
mod scale;
mod socket;
mod stats;
mod virtio;
mod virtio_guest;

use std::{fmt::Write as _, fs, path::PathBuf, process::ExitCode};

use clap::Parser;

#[derive(Parser)]
#[command(name = "rstguard-bench", about = "rstguard's benchmarks (root)")]
struct Args {
    /// Rounds of every measurement (medians, min and max over them).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// BPF_PROG_TEST_RUN repeat count for program costs.
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// Only these parts (repeatable): cost, socket, scale, flood.
    #[arg(long = "only", value_enum)]
    only: Vec<Part>,
    /// Seconds each flood lasts.
    #[arg(long, default_value_t = 3.0)]
    flood_secs: f64,
    /// Write the results as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// virtme-ng's `vng`, for `--only virtio` (`cargo xtask bench
    /// --native-virtio` passes the kernel matrix's).
    #[arg(long, value_name = "PATH")]
    vng: Option<PathBuf>,
    /// The kernel image the virtio VM boots, for `--only virtio`.
    #[arg(long, value_name = "PATH")]
    vmlinuz: Option<PathBuf>,
    /// Where the virtio VM's console and agent logs go.
    #[arg(long, value_name = "DIR", default_value = "target/bench-virtio")]
    virtio_out: PathBuf,
    /// Also the flood on a VM's virtio-net NIC (needs --vng and --vmlinuz).
    #[arg(long)]
    native_virtio: bool,
    /// Run as the agent inside the virtio VM (started by `--only virtio`).
    #[arg(long, hide = true)]
    guest_agent: bool,
    /// The agent's log file.
    #[arg(long, hide = true, value_name = "FILE")]
    agent_log: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Cost,
    Socket,
    Scale,
    Flood,
    /// Native XDP on virtio-net in a VM, flooded through a tap (only when
    /// named: it boots a VM).
    Virtio,
}

fn main() -> ExitCode {
    let args = Args::parse();
    rstguard_lab::require_root();
    if args.guest_agent {
        let log = args
            .agent_log
            .clone()
            .unwrap_or_else(|| PathBuf::from("/dev/null"));
        return virtio_guest::run(&log);
    }
    // The VM row runs only when named.
    let want = |p| {
        args.only.contains(&p)
            || (p == Part::Virtio && args.native_virtio)
            || (args.only.is_empty() && p != Part::Virtio)
    };
    let started = std::time::Instant::now();
    let mut md = report::header(&args_line(&args), args.rounds);
    // Flow creation, common and per-CPU LRU, and parse plus one lookup.
    let mut creation = None;
    if want(Part::Cost) {
        let results = cost::measure(args.rounds, args.repeat);
        let table = cost_table(&results);
        println!("{table}");
        md.push_str(&report::cost(&table, &results, args.repeat));
        let median = |name: &str| {
            results
                .iter()
                .find(|r| r.name.starts_with(name))
                .map(|r| (r.rstguard.median(), r.baselines[2].median()))
        };
        if let (Some((common, lookup)), Some((per_cpu, _))) = (
            median("SYN (flow creation)"),
            median("SYN, the same creation"),
        ) {
            creation = Some((common, per_cpu, lookup));
        }
    }
    if want(Part::Socket) {
        let results = socket::measure(args.rounds, args.repeat);
        let table = socket_table(&results);
        println!("{table}");
        md.push_str(&report::socket(&table));
    }
    if want(Part::Flood) {
        let results = flood::measure(args.rounds, args.flood_secs);
        let table = flood_table(&results);
        println!("{table}");
        md.push_str(&report::flood(&table, &results, args.flood_secs));
    }
    if want(Part::Scale) {
        let sizes = scale::sizes(args.rounds);
        let over = scale::overflow();
        let table = scale_table(&sizes, &over);
        println!("{table}");
        md.push_str(&report::scale(&table, &sizes, creation));
    }
    if want(Part::Virtio) {
        let (Some(vng), Some(vmlinuz)) = (args.vng.clone(), args.vmlinuz.clone()) else {
            eprintln!(
                "rstguard-bench: --only virtio needs --vng and --vmlinuz (`cargo xtask bench --native-virtio` passes them)"
            );
            return ExitCode::FAILURE;
        };
        let spec = virtio::VmSpec {
            vng,
            vmlinuz,
            out: args.virtio_out.clone(),
        };
        let run = virtio::measure(&spec, args.rounds, args.flood_secs);
        let table = virtio::table(&run);
        println!(
            "guest kernel {}; {}; {}",
            run.kernel, run.nic, run.check_line
        );
        println!("{table}");
        md.push_str(&report::virtio(&table, &run));
    }
    md.push_str(report::NIC);
    md.push_str(&format!(
        "\n_The whole run took {:.0} s._\n",
        started.elapsed().as_secs_f64()
    ));
    if let Some(path) = &args.write {
        if let Err(e) = fs::write(path, &md) {
            eprintln!("rstguard-bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn socket_table(results: &[socket::SocketResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| class (socket mode) | rstguard ns | parse only ns | parse + socket lookup ns | ratio (non-RST: to parse only, aim <= 1.15; RSTs: to parse + lookup) |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- |");
    for r in results {
        let ratio = r.ratio();
        let missed = !r.rst && ratio > 1.15;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2}{} |",
            r.name,
            r.rstguard.show(1),
            r.baselines[0].show(1),
            r.baselines[1].show(1),
            ratio,
            if missed { " (missed)" } else { "" },
        );
    }
    s
}

fn cost_table(results: &[cost::ClassResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| class | rstguard ns | empty XDP ns | parse only ns | parse + LRU lookup ns | ratio to parse + lookup (aim <= 1.3) | RST aim <= 25 ns | projected Mpps/core (42 ns + rstguard) |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        let ratio = r.ratio();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.2}{} | {} | {:.1}{} |",
            r.name,
            r.rstguard.show(1),
            r.baselines[0].show(1),
            r.baselines[1].show(1),
            r.baselines[2].show(1),
            ratio,
            if ratio <= 1.3 { "" } else { " (missed)" },
            if r.rst {
                if r.rstguard.median() <= 25.0 {
                    "met"
                } else {
                    "missed"
                }
            } else {
                "-"
            },
            r.mpps(),
            if 1000.0 / r.mpps() <= cost::LINE_RATE_NS {
                " (10GbE line rate)"
            } else {
                ""
            },
        );
    }
    s
}

fn scale_table(sizes: &[scale::SizeResult], o: &scale::Overflow) -> String {
    let mut s = String::new();
    let base = sizes[0].lookup.median();
    let _ = writeln!(
        s,
        "| assured flows in the table | tracked-flow packet, ns (each run a different flow) | vs 1k (aim at 4M <= 2) | kernel memory per assured flow, bytes (aim <= 128) | the assured table beyond 128 bytes a flow, bytes | per new flow, bytes |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
    for r in sizes {
        let ratio = r.lookup.median() / base;
        let _ = writeln!(
            s,
            "| {} | {} | {:.2}{} | {:.1}{} | {} | {:.1} |",
            r.flows,
            r.lookup.show(1),
            ratio,
            if Some(&r.flows) == scale::SIZES.last() && ratio > 2.0 {
                " (missed)"
            } else {
                ""
            },
            r.bytes_per_flow,
            if r.bytes_per_flow > 128.0 {
                " (missed)"
            } else {
                ""
            },
            r.beyond_128(),
            r.new_bytes_per_flow,
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Past capacity: an assured table of {} flows holding {} established ones, a table of {} new flows, then {} new flows \
         (SYNs of a flood) in chunks of 50,000. Creating a flow in the full table of new flows (each evicts the least \
         recently used one) costs {} ns, {:.1} M creations/s on one core. Established flows still tracked afterwards: \
         {} of {} when their traffic went on between chunks, {} of {} when they were idle (aim: all of them).",
        o.capacity,
        o.established,
        o.new_capacity,
        o.new_flows,
        o.create_full_ns.show(0),
        1000.0 / o.create_full_ns.median(),
        o.survived_active,
        o.established,
        o.survived_idle,
        o.established
    );
    s
}

fn flood_table(results: &[flood::FloodResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| configuration | spoofed RSTs, Mpps | machine CPU per spoofed RST, ns (sender + receiver) | filter program per packet, ns (bpf_stats) | live transfer goodput during the flood |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- |");
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0}% ({:.0}-{:.0}%) |",
            r.config.name(),
            r.pps.show(2),
            r.cpu_ns.show(0),
            if r.prog_ns.0.is_empty() {
                "-".to_string()
            } else {
                r.prog_ns.show(1)
            },
            100.0 * r.goodput.median(),
            100.0 * r.goodput.min(),
            100.0 * r.goodput.max()
        );
    }
    s
}

/// The command line that reproduces this run.
fn args_line(a: &Args) -> String {
    let mut s = String::from(if a.native_virtio {
        "cargo xtask bench --native-virtio --"
    } else {
        "cargo xtask bench --"
    });
    if a.rounds != 5 {
        s.push_str(&format!(" --rounds {}", a.rounds));
    }
    if a.repeat != 1_000_000 {
        s.push_str(&format!(" --repeat {}", a.repeat));
    }
    for p in &a.only {
        s.push_str(&format!(" --only {}", format!("{p:?}").to_lowercase()));
    }
    s.push_str(" --write BENCHMARKS.md");
    s
}
