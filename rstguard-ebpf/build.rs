use which::which;

fn main() {
    // Rebuild the programs when the linker changes (aya's template does the
    // same): a new bpf-linker can change the object without a source change.
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    // bpf-linker asks LLVM to expand memcpy "in order" by default, and with
    // that LLVM expands no memset or memmove at all: every struct copy and
    // zeroing becomes a call to a byte-at-a-time loop, which the verifiers
    // of 5.10 and 6.1 walk once per byte on every path (the classifier hit
    // their one-million-instruction limit). Without it, LLVM writes plain
    // loads and stores.
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "bpf") {
        println!("cargo:rustc-link-arg=--disable-expand-memcpy-in-order");
    }
}
