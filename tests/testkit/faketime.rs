//! libfaketime, to give a real supervisord a clock that is off or steps while it runs.
//!
//! The library (Debian's `libfaketime`, pulled in by the `faketime` package) is preloaded into
//! supervisord (`LD_PRELOAD`), which then reads its wall clock as the real one moved by the
//! offset written in a file ([`FakeClock`]); the file is read again at every clock reading
//! (`FAKETIME_NO_CACHE`), so a test steps the clock by rewriting it. The monotonic clock is
//! left alone (`FAKETIME_DONT_FAKE_MONOTONIC`), as a real wall-clock step leaves it, and the
//! receiver and `supervisorctl` run on the real clock.
//!
//! When the library is not installed, it is installed with `apt-get install -y faketime`
//! (running `apt-get update` first when the package lists are missing), which needs root;
//! without root, apt or a network, the test fails saying what to install.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::supervisord::Options;

/// Where Debian and others put the library, per architecture (`x86_64-linux-gnu`, ...).
const LIBRARY: &str = "libfaketime.so.1";

/// The preloadable library; installs it on first use, panics with the remedy when it cannot.
pub fn library() -> &'static Path {
    static LIBRARY_PATH: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY_PATH.get_or_init(|| find_or_install().unwrap_or_else(|e| panic!("{e}")))
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(found) = find() {
        return works(&found).map(|()| found);
    }
    let remedy = "install libfaketime (Debian, as root: `apt-get update && apt-get install -y \
                  faketime`) so that libfaketime.so.1 is under /usr/lib/<arch>/faketime/";
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "libfaketime is not installed and installing it needs root: {remedy}"
        ));
    }
    eprintln!("libfaketime is not installed: apt-get install -y faketime");
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "-o",
                "DPkg::Lock::Timeout=120",
                "faketime",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("libfaketime: cannot run apt-get ({e}); {remedy}"))
    };
    let mut installed = install()?;
    if !installed.status.success() {
        // A fresh machine may have no package lists yet: read them once and try again.
        let updated = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok_and(|status| status.success());
        if updated {
            installed = install()?;
        }
    }
    if !installed.status.success() {
        return Err(format!(
            "libfaketime: `apt-get install -y faketime` failed with {}:\n{}\n{}\n{remedy}",
            installed.status,
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        ));
    }
    let found = find().ok_or_else(|| {
        format!("libfaketime: installed, but no {LIBRARY} under /usr/lib; {remedy}")
    })?;
    works(&found).map(|()| found)
}

/// `/usr/lib/<arch>/faketime/libfaketime.so.1`, or the same without the architecture.
fn find() -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/local/lib")];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|entry| entry.path()));
    }
    dirs.into_iter()
        .map(|dir| dir.join("faketime").join(LIBRARY))
        .find(|candidate| candidate.is_file())
}

/// Runs `date +%s` with the library and a clock a million seconds ahead, and checks it shows.
fn works(library: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let clock = FakeClock::at(dir.path(), library, 1_000_000);
    let out = Command::new("date")
        .arg("+%s")
        .envs(clock.env())
        .output()
        .map_err(|e| format!("cannot run date: {e}"))?;
    let faked: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("libfaketime: date printed no time ({e}): {out:?}"))?;
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if (faked - real - 1_000_000).abs() > 60 {
        return Err(format!(
            "libfaketime at {} does not move the clock: date printed {faked}, the real time is \
             {real}",
            library.display()
        ));
    }
    Ok(())
}

/// A clock off by a number of seconds from the real one, for the programs started with
/// [`FakeClock::env`]; [`FakeClock::set`] steps it while they run.
pub struct FakeClock {
    /// Holds the offset file when the clock made its own directory.
    _dir: Option<tempfile::TempDir>,
    file: PathBuf,
    library: PathBuf,
}

impl FakeClock {
    /// A clock `offset_seconds` off the real one (negative: behind).
    pub fn new(offset_seconds: i64) -> FakeClock {
        let library = library();
        let dir = tempfile::Builder::new()
            .prefix("faketime")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let mut clock = FakeClock::at(dir.path(), library, offset_seconds);
        clock._dir = Some(dir);
        clock
    }

    fn at(dir: &Path, library: &Path, offset_seconds: i64) -> FakeClock {
        let clock = FakeClock {
            _dir: None,
            file: dir.join("offset"),
            library: library.to_path_buf(),
        };
        clock.set(offset_seconds);
        clock
    }

    /// Moves the clock to `offset_seconds` off the real one, at once for every process using
    /// it. Written aside and renamed, so a reading never sees half a file.
    pub fn set(&self, offset_seconds: i64) {
        let staged = self.file.with_extension("new");
        fs::write(&staged, format!("{offset_seconds:+}\n"))
            .and_then(|()| fs::rename(&staged, &self.file))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.file.display()));
    }

    /// The environment that puts a program on this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), self.library.display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                self.file.display().to_string(),
            ),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ]
    }

    /// `options` for a supervisord (and its programs) on this clock.
    pub fn apply(&self, options: Options) -> Options {
        self.env()
            .iter()
            .fold(options, |options, (key, value)| options.env(key, value))
    }
}
