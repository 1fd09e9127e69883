use which::which;

/// Rebuild the programs when the linker changes (aya's template does the
/// same): a new bpf-linker can change the object without a source change.
fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
