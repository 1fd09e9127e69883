//! `rstguard check` inside each kernel of the matrix: the real CLI, run in
//! the guest (in a network namespace with a veth pair, `rgc0`, so that an
//! interface is checked too), in text and in JSON. A kernel's row fails
//! when check says rstguard cannot run there, or when what it says about
//! the kernel disagrees with README's Kernels table (every kernel of the
//! matrix runs rstguard, XDP through a link, the egress classifier
//! through TCX from 6.6 and through clsact before), or when the text and
//! the JSON disagree. Then the real CLI attaches there (tracking, monitor, on the
//! veth): a kernel whose verifier refuses the programs, or takes longer
//! than [`ATTACH_SECS`] to accept them, fails its row at once, and its
//! test layers are left out rather than each waiting for the verifier.

use std::path::Path;

use serde_json::Value;

/// The interface the guest checks (one end of a veth pair).
pub const IFACE: &str = "rgc0";

/// How long the real CLI gets to attach inside a guest before the kernel's
/// row fails and its test layers are left out. Under TCG a healthy load
/// takes seconds to tens of seconds; a verifier that walks to its limit of
/// a million instructions (5.10 with the tracking object's TC program, as
/// found) takes about nine minutes per load, and every test that loads the
/// object would wait as long: the layers would run into their timeouts.
pub const ATTACH_SECS: u32 = 300;

/// The script run inside the guest's check namespace (`bash FILE`): a veth
/// pair, a BPF filesystem, `rstguard check` in text and JSON, then
/// `rstguard attach` on the veth until it says it attached (or
/// [`ATTACH_SECS`] pass), and SIGTERM. Outputs and exit codes land in
/// `out`.
pub fn namespace_script(bin: &str, out: &str) -> String {
    format!(
        "set -u\n\
         mount -t bpf bpf /sys/fs/bpf\n\
         ip link add {IFACE} type veth peer name rgc1 && ip link set {IFACE} up && ip link set rgc1 up\n\
         {bin} check {IFACE} > {out}/check.txt 2> {out}/check.err; echo $? > {out}/check.rc\n\
         {bin} check {IFACE} --json > {out}/check.json 2>> {out}/check.err; echo $? > {out}/check.json.rc\n\
         {bin} attach {IFACE} --state track --policy monitor --interval 0 --no-metrics > {out}/attach.log 2>&1 &\n\
         pid=$!\n\
         echo 1 > {out}/attach.rc\n\
         for i in $(seq {ATTACH_SECS}); do\n\
         \x20 if grep -q ' attached ' {out}/attach.log; then echo 0 > {out}/attach.rc; break; fi\n\
         \x20 kill -0 $pid 2>/dev/null || break\n\
         \x20 sleep 1\n\
         done\n\
         kill -TERM $pid 2>/dev/null; wait $pid\n"
    )
}

/// The guest script's part (run.sh): the namespace, the script above in
/// it, and an early end (no layers) when rstguard did not attach.
pub fn script(check_sh: &str, out: &str) -> String {
    format!(
        "ip netns add rgcheck\n\
         ip netns exec rgcheck bash {check_sh}\n\
         ip netns del rgcheck\n\
         echo \"rstguard-matrix: check end $(date +%s)\"\n\
         if [ \"$(cat {out}/attach.rc)\" != 0 ]; then exit 0; fi\n"
    )
}

/// What check said inside one kernel, and whether the row passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    pub ok: bool,
    /// `rstguard attach` attached (else the layers did not run).
    pub attached: bool,
    /// For the summary: `OK`, `OK, 1 WARN (lockdown)`, or why it fails.
    pub summary: String,
    /// check's WARN and FAIL lines, as it printed them.
    pub lines: Vec<String>,
}

impl CheckRun {
    fn failed(why: impl Into<String>, lines: Vec<String>) -> CheckRun {
        CheckRun {
            ok: false,
            attached: true,
            summary: why.into(),
            lines,
        }
    }
}

/// Reads what the guest left in `out` and judges it for `kernel` (the
/// matrix's name, e.g. `5.10`).
pub fn read(kernel: &str, out: &Path) -> CheckRun {
    let read = |f: &str| std::fs::read_to_string(out.join(f)).ok();
    let rc = |f: &str| read(f).and_then(|s| s.trim().parse::<i32>().ok());
    let mut run = judge(
        kernel,
        read("check.txt").as_deref(),
        rc("check.rc"),
        read("check.json").as_deref(),
        rc("check.json.rc"),
    );
    if rc("attach.rc") != Some(0) {
        // Its last line says why (one line, with where the verifier's log
        // went), or nothing when it was still loading.
        let log = read("attach.log").unwrap_or_default();
        let last = log.lines().rev().find(|l| !l.trim().is_empty());
        run.ok = false;
        run.attached = false;
        // An error line: it gave up by itself; none: still loading when
        // its time ran out.
        let what = match last {
            Some(l) if l.contains("error") => format!("`rstguard attach` failed: {l}"),
            Some(l) => {
                format!("`rstguard attach` did not attach within {ATTACH_SECS} s (last: {l})")
            }
            None => format!("`rstguard attach` did not attach within {ATTACH_SECS} s"),
        };
        run.summary = format!(
            "{}; {what}; the layers did not run (see {})",
            run.summary,
            out.join("attach.log").display()
        );
    }
    run
}

/// (major, minor) of a matrix name like `6.12`.
fn version(name: &str) -> Option<(u32, u32)> {
    let (a, b) = name.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The verdict on one kernel's check, from its text and JSON outputs and
/// their exit codes.
pub fn judge(
    kernel: &str,
    text: Option<&str>,
    text_rc: Option<i32>,
    json: Option<&str>,
    json_rc: Option<i32>,
) -> CheckRun {
    let (Some(text), Some(text_rc), Some(json), Some(json_rc)) = (text, text_rc, json, json_rc)
    else {
        return CheckRun::failed("check did not run (no output in the guest)", Vec::new());
    };
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("FAIL"))
        .map(str::to_string)
        .collect();
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return CheckRun::failed("check --json printed no JSON", lines);
    };
    let (Some(status), Some(checks)) = (v["status"].as_str(), v["checks"].as_array()) else {
        return CheckRun::failed("check --json: no status or checks", lines);
    };
    let expected_rc = i32::from(status == "fail");
    if text_rc != expected_rc || json_rc != expected_rc {
        return CheckRun::failed(
            format!("check said {status} but exited {text_rc} (text) and {json_rc} (JSON)"),
            lines,
        );
    }
    // The text and the JSON say the same, item by item.
    let text_items: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if text_items.len() != checks.len() {
        return CheckRun::failed(
            format!(
                "check printed {} lines but its JSON has {} items",
                text_items.len(),
                checks.len()
            ),
            lines,
        );
    }
    for (line, c) in text_items.iter().zip(checks) {
        let label = c["status"].as_str().unwrap_or("?").to_uppercase();
        let item = c["item"].as_str().unwrap_or("?");
        if !line.starts_with(&label) || !line.contains(&format!("{item}:")) {
            return CheckRun::failed(format!("text {line:?} is not JSON's {label} {item}"), lines);
        }
    }
    let item = |name: &str| checks.iter().find(|c| c["item"] == name);
    let fails: Vec<&str> = checks
        .iter()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["item"].as_str())
        .collect();
    if !fails.is_empty() {
        return CheckRun::failed(
            format!(
                "check says rstguard cannot run here: FAIL {}",
                fails.join(", ")
            ),
            lines,
        );
    }
    // README's Kernels table: every kernel of the matrix runs rstguard.
    let Some(k) = item("kernel") else {
        return CheckRun::failed("no kernel item", lines);
    };
    let detail = k["detail"].as_str().unwrap_or_default();
    if k["status"] != "ok" {
        return CheckRun::failed(format!("kernel: {detail}"), lines);
    }
    if !detail.starts_with(&format!("Linux {kernel}.")) {
        return CheckRun::failed(format!("kernel is not {kernel}: {detail}"), lines);
    }
    let tcx = version(kernel).is_some_and(|v| v >= (6, 6));
    let wants: &[&str] = if tcx {
        &["XDP links (5.9+", "TCX egress (6.6+)"]
    } else {
        &["XDP links (5.9+", "clsact"]
    };
    if let Some(w) = wants.iter().find(|w| !detail.contains(*w)) {
        return CheckRun::failed(
            format!("kernel: README's table says {w:?} on {kernel}, check says {detail:?}"),
            lines,
        );
    }
    // Debian builds every kernel of the matrix with BTF (socket mode reads
    // its offsets from it).
    match item("btf") {
        Some(b) if b["status"] == "ok" => {}
        Some(b) => {
            return CheckRun::failed(
                format!("btf: {}", b["detail"].as_str().unwrap_or_default()),
                lines,
            )
        }
        None => return CheckRun::failed("no btf item", lines),
    }
    match item(&format!("interface {IFACE}")) {
        Some(i) if i["status"] == "ok" => {}
        Some(i) => {
            return CheckRun::failed(
                format!(
                    "interface {IFACE}: {}",
                    i["detail"].as_str().unwrap_or_default()
                ),
                lines,
            )
        }
        None => return CheckRun::failed(format!("no item for interface {IFACE}"), lines),
    }
    let warns: Vec<&str> = checks
        .iter()
        .filter(|c| c["status"] == "warn")
        .filter_map(|c| c["item"].as_str())
        .collect();
    CheckRun {
        ok: true,
        attached: true,
        summary: if warns.is_empty() {
            "OK".into()
        } else {
            format!("OK, {} WARN ({})", warns.len(), warns.join(", "))
        },
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, status: &str, detail: &str) -> Value {
        serde_json::json!({"item": name, "status": status, "detail": detail, "action": null})
    }

    fn outputs(items: &[Value]) -> (String, String) {
        let worst = ["fail", "warn", "ok"]
            .into_iter()
            .find(|s| items.iter().any(|i| i["status"] == *s))
            .unwrap_or("ok");
        let text = items
            .iter()
            .map(|i| {
                format!(
                    "{:<4} {}: {}\n",
                    i["status"].as_str().unwrap().to_uppercase(),
                    i["item"].as_str().unwrap(),
                    i["detail"].as_str().unwrap()
                )
            })
            .collect();
        let json = serde_json::json!({"status": worst, "checks": items}).to_string();
        (text, json)
    }

    const K510: &str = "Linux 5.10.262: CAP_BPF and CAP_PERFMON (5.8+), ring buffer (5.8+), XDP links (5.9+: a dead daemon's programs detach), egress through a clsact qdisc (TCX needs 6.6)";
    const K612: &str = "Linux 6.12.95: CAP_BPF and CAP_PERFMON (5.8+), ring buffer (5.8+), XDP links (5.9+: a dead daemon's programs detach), TCX egress (6.6+)";

    fn good(kernel: &str) -> Vec<Value> {
        vec![
            item("kernel", "ok", kernel),
            item("btf", "ok", "kernel BTF at /sys/kernel/btf/vmlinux"),
            item("lockdown", "warn", "mode not readable"),
            item(
                "interface rgc0",
                "ok",
                "link ethernet, driver veth, native XDP supported",
            ),
        ]
    }

    fn judge_items(kernel: &str, items: &[Value], rc: i32) -> CheckRun {
        let (text, json) = outputs(items);
        judge(kernel, Some(&text), Some(rc), Some(&json), Some(rc))
    }

    #[test]
    fn a_kernel_the_table_supports_passes_with_its_warnings_named() {
        let r = judge_items("5.10", &good(K510), 0);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.summary, "OK, 1 WARN (lockdown)");
        assert!(judge_items("6.12", &good(K612), 0).ok);
    }

    #[test]
    fn what_the_table_contradicts_fails_the_row() {
        // TCX on 5.10, clsact on 6.12, another kernel, a FAIL, no BTF.
        assert!(!judge_items("5.10", &good(K612), 0).ok);
        assert!(!judge_items("6.12", &good(K510), 0).ok);
        assert!(!judge_items("6.1", &good(K510), 0).ok);
        let mut refused = good(K510);
        refused[0] = item("kernel", "fail", K510);
        let r = judge_items("5.10", &refused, 1);
        assert!(!r.ok && r.summary.contains("FAIL kernel"), "{r:?}");
        let mut no_btf = good(K612);
        no_btf[1] = item("btf", "warn", "no kernel BTF");
        assert!(!judge_items("6.12", &no_btf, 0).ok);
        let mut no_native = good(K612);
        no_native[3] = item("interface rgc0", "warn", "driver unknown");
        assert!(!judge_items("6.12", &no_native, 0).ok);
    }

    #[test]
    fn the_guest_scripts_are_valid_shell() {
        for text in [
            namespace_script("'/a b/rstguard'", "'/out dir'"),
            script("'/out dir/check.sh'", "'/out dir'"),
        ] {
            let out = std::process::Command::new("bash")
                .args(["-n", "-c", &text])
                .output()
                .expect("bash");
            assert!(
                out.status.success(),
                "{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ns = namespace_script("B", "O");
        assert!(ns.contains("B attach rgc0 --state track --policy monitor"));
        assert!(ns.contains(&format!("seq {ATTACH_SECS}")));
    }

    #[test]
    fn a_kernel_where_attach_fails_fails_its_row_with_the_daemons_line() {
        let dir = std::env::temp_dir().join(format!("rstguard-guest-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (text, json) = outputs(&good(K510));
        for (f, c) in [
            ("check.txt", text.as_str()),
            ("check.rc", "0"),
            ("check.json", json.as_str()),
            ("check.json.rc", "0"),
            ("attach.rc", "0"),
        ] {
            std::fs::write(dir.join(f), c).unwrap();
        }
        let r = read("5.10", &dir);
        assert!(r.ok && r.attached, "{r:?}");
        std::fs::write(dir.join("attach.rc"), "1").unwrap();
        std::fs::write(
            dir.join("attach.log"),
            "rstguard: error: the kernel's verifier rejected program rstguard_tc\n",
        )
        .unwrap();
        let r = read("5.10", &dir);
        assert!(!r.ok && !r.attached, "{r:?}");
        assert!(
            r.summary
                .contains("failed: rstguard: error: the kernel's verifier"),
            "{r:?}"
        );
        std::fs::write(dir.join("attach.log"), "").unwrap();
        let r = read("5.10", &dir);
        assert!(r.summary.contains("did not attach within 300 s"), "{r:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exit_codes_and_text_must_agree_with_the_json() {
        assert!(!judge_items("6.12", &good(K612), 1).ok);
        let (text, json) = outputs(&good(K612));
        let short: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(!judge("6.12", Some(&short), Some(0), Some(&json), Some(0)).ok);
        let swapped = text.replacen("OK   kernel", "WARN kernel", 1);
        assert!(!judge("6.12", Some(&swapped), Some(0), Some(&json), Some(0)).ok);
        assert!(
            !judge(
                "6.12",
                Some(&text),
                Some(0),
                Some("rstguard: error"),
                Some(0)
            )
            .ok
        );
        assert!(!judge("6.12", None, None, None, None).ok);
    }
}
