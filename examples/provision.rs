//! Finds supervisord, or installs it into the venv the tests share, and prints how to run it:
//! the repository's one provisioning routine (`tests/testkit/provision.rs`) as a command, for
//! scripts.
//!
//! `cargo run --example provision [-- TARGET_DIR]`
//!
//! Prints two lines, the supervisord and the supervisorctl command lines, their words separated
//! by tabs. TARGET_DIR is the cargo target dir whose `supervisor-venv` to use (default: the one
//! this program was built in). It needs no crate, so the demo (`examples/demo/run.sh`) builds
//! it with `rustc` alone rather than wait for every dependency of the examples.

#[allow(dead_code)]
#[path = "../tests/testkit/provision.rs"]
mod provision;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let target_dir = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => match provision::built_target_dir() {
            Some(dir) => dir,
            None => {
                eprintln!("usage: provision TARGET_DIR (no cargo target dir above this program)");
                return ExitCode::from(2);
            }
        },
    };
    let tools = match provision::provision(&target_dir) {
        Ok(tools) => tools,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for argv in [tools.supervisord_argv(), tools.supervisorctl_argv()] {
        match line(argv) {
            Some(line) => println!("{line}"),
            None => {
                eprintln!("a path holds a tab or a line break, or is not UTF-8: {argv:?}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// `argv` joined with tabs, when no word holds a tab or a line break.
fn line(argv: &[OsString]) -> Option<String> {
    let words: Option<Vec<&str>> = argv.iter().map(|w| w.to_str()).collect();
    let words = words?;
    if words.iter().any(|w| w.contains(['\t', '\n', '\r'])) {
        return None;
    }
    Some(words.join("\t"))
}
