//! promtool, Prometheus's rule checker, for the tests that run the documented alert rules on
//! what the receiver sent (`promtool test rules`).
//!
//! From PATH when it is there. Otherwise it is taken from Debian's `prometheus` package, the
//! way the supervisor venv is made on first use: `apt-get download prometheus` and
//! `dpkg-deb -x` into a staging dir under the cargo target dir, promtool kept, the rest
//! deleted, the dir renamed into `<target dir>/promtool` when promtool runs. Nothing is
//! installed on the system, no root is needed, and no Prometheus server is ever started (which
//! `apt-get install prometheus` would do on a machine with systemd). Without package lists (a
//! fresh machine) it runs `apt-get update` once, which needs root. Where that cannot work (no
//! apt, no network, no root and no lists), the test fails with what to do.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::supervisord::target_dir;

/// The promtool to run; panics with the cause and the remedy when there is none.
pub fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| find_or_extract(&target_dir()).unwrap_or_else(|e| panic!("{e}")))
}

fn find_or_extract(target_dir: &Path) -> Result<PathBuf, String> {
    if let Some(on_path) = find_on_path("promtool") {
        return Ok(on_path);
    }
    let dir = target_dir.join("promtool");
    let extracted = dir.join("promtool");
    if runs(&extracted) {
        return Ok(extracted);
    }
    eprintln!(
        "promtool is not on PATH: extracting it from Debian's prometheus package into {}",
        dir.display()
    );
    let staging = target_dir.join(format!("promtool.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = extract(&staging).and_then(|()| {
        // Another test process may have finished first: its promtool is as good as ours.
        let _ = fs::remove_dir_all(&dir);
        match fs::rename(&staging, &dir) {
            Ok(()) => Ok(()),
            Err(_) if runs(&extracted) => Ok(()),
            Err(e) => Err(format!(
                "cannot move {} to {}: {e}",
                staging.display(),
                dir.display()
            )),
        }
    });
    let _ = fs::remove_dir_all(&staging);
    result?;
    if runs(&extracted) {
        Ok(extracted)
    } else {
        Err(format!("{} does not run", extracted.display()))
    }
}

/// Downloads the package into `staging` and leaves `staging/promtool` alone there.
fn extract(staging: &Path) -> Result<(), String> {
    let remedy = "install promtool (Debian: `apt-get update && apt-get install -y \
                  --no-install-recommends prometheus`, then `systemctl disable --now \
                  prometheus` if it started a server; elsewhere the Prometheus release \
                  archive) so that it is on PATH";
    fs::create_dir_all(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let fetch = || {
        Command::new("apt-get")
            .args(["download", "prometheus"])
            .current_dir(staging)
            .output()
            .map_err(|e| format!("promtool: cannot run apt-get ({e}); {remedy}"))
    };
    let mut download = fetch()?;
    if !download.status.success() {
        // A fresh machine may have no package lists yet: read them once (as root this is
        // allowed; otherwise it fails and the first error is reported) and try again.
        let updated = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok_and(|status| status.success());
        if updated {
            download = fetch()?;
        }
    }
    if !download.status.success() {
        return Err(format!(
            "promtool: `apt-get download prometheus` failed with {} (no package lists? run \
             `apt-get update`):\n{}\n{}\nOr {remedy}",
            download.status,
            String::from_utf8_lossy(&download.stdout),
            String::from_utf8_lossy(&download.stderr)
        ));
    }
    let deb = fs::read_dir(staging)
        .map_err(|e| format!("cannot read {}: {e}", staging.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| format!("promtool: apt-get downloaded no .deb; {remedy}"))?;
    let unpacked = staging.join("unpacked");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .map_err(|e| format!("promtool: cannot run dpkg-deb ({e}); {remedy}"))?;
    if !status.success() {
        return Err(format!(
            "promtool: dpkg-deb -x failed with {status}; {remedy}"
        ));
    }
    let binary = unpacked.join("usr").join("bin").join("promtool");
    fs::rename(&binary, staging.join("promtool"))
        .map_err(|e| format!("promtool: not in the package ({e}); {remedy}"))?;
    let _ = fs::remove_dir_all(&unpacked);
    let _ = fs::remove_file(&deb);
    Ok(())
}

fn runs(promtool: &Path) -> bool {
    promtool.is_file()
        && Command::new(promtool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `promtool test rules FILE` in `dir`: its output, and whether every test passed.
pub fn test_rules(dir: &Path, file: &Path) -> (bool, String) {
    let out = Command::new(promtool())
        .arg("test")
        .arg("rules")
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
