//! `rstguard-bench` (run by `cargo xtask bench`): rstguard's performance,
//! measured against baselines in the same run. Prints tables, and with
//! `--write FILE` writes them as Markdown (BENCHMARKS.md). Needs root.

mod cost;
mod frames;
mod stats;

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
    /// Only these parts (repeatable): cost, scale, flood.
    #[arg(long = "only", value_enum)]
    only: Vec<Part>,
    /// Write the results as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Cost,
    Scale,
    Flood,
}

fn main() -> ExitCode {
    let args = Args::parse();
    rstguard_lab::require_root();
    let want = |p| args.only.is_empty() || args.only.contains(&p);
    let mut md = String::new();
    if want(Part::Cost) {
        let results = cost::measure(args.rounds, args.repeat);
        let table = cost_table(&results);
        println!("{table}");
        md.push_str(&table);
    }
    if let Some(path) = &args.write {
        if let Err(e) = fs::write(path, &md) {
            eprintln!("rstguard-bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
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
