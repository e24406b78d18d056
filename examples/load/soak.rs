//! `--soak`: a long run under churn, to see whether the receiver's memory stays flat.
//!
//! Churn, as production sees it, every `--churn-every` (from the moment every target has been
//! polled once, through the warm-up and the window):
//! - **targets replaced**: `--churn-replace` % of the config's targets leave and as many new
//!   ones (never seen names) join: the harness rewrites the receiver's native config with the
//!   next rolling subset of the fleet ([`Rotation`]) and sends SIGHUP, as an operator or a
//!   config manager would;
//! - **supervisords restarted**: `--churn-restart` % of the config's targets drop their
//!   connections, refuse new ones for `--restart-down`, then listen again with new start
//!   times and pids (`sim.rs`'s [`Life`](crate::sim::Life));
//! - processes changing state within each supervisord, as in every run (`sim.rs`).
//!
//! The receiver's VmRSS is read every `--sample-every` over the window (after the warm-up);
//! the report gives the least-squares slope of those readings in MB per hour with its R², the
//! first, last, smallest and largest, and the usual run figures: polls judged late or missed
//! only while they were due (in the config and up: see `punctuality::churned_stats`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::child::ChildGuard;
use crate::churn::{pick_restarts, share, Rotation};
use crate::fit::{fit, Fit};
use crate::fleet::ShardReport;
use crate::procfs;
use crate::report::{megabytes, thousands, RunReport};
use crate::run::Shard;

/// What `--soak` was asked to do, beside the run's own settings.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSpec {
    #[serde(serialize_with = "seconds")]
    pub churn_every: Duration,
    pub replace_percent: f64,
    pub restart_percent: f64,
    #[serde(serialize_with = "seconds")]
    pub restart_down: Duration,
    #[serde(serialize_with = "seconds")]
    pub sample_every: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Writes the receiver's config for a set of (fleet server, target name).
pub type ConfigFor = Box<dyn Fn(&mut dyn Iterator<Item = (usize, String)>) -> String>;

/// The churn and the memory readings of one soak run, driven by `run::run_with`.
pub struct Soak {
    spec: SoakSpec,
    rotation: Rotation,
    restarts_per_round: usize,
    config_for: Option<ConfigFor>,
    config: PathBuf,
    next_round: Option<Instant>,
    window_start: Option<Instant>,
    next_sample: Option<Instant>,
    pub figures: Figures,
}

/// What the churn did, counted by the harness, the fleet and the receiver's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub rounds: u64,
    pub reloads_sent: u64,
    /// "configuration reloaded" lines in the receiver's log: reloads it applied.
    pub reloads_applied: u64,
    /// Reloads the receiver refused (`reload_failed`): none expected.
    pub reloads_failed: u64,
    pub targets_added: u64,
    pub targets_removed: u64,
    pub restarts_sent: u64,
    /// Restarts after which the simulated supervisord listened again (counted by the fleet).
    pub restarts_done: u64,
    pub rebind_failures: u64,
    pub rss_samples: Vec<RssSample>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RssSample {
    /// Since the window started.
    pub seconds: f64,
    pub bytes: u64,
}

impl Soak {
    pub fn new(spec: SoakSpec, targets: usize) -> Soak {
        let replace = share(targets, spec.replace_percent);
        Soak {
            rotation: Rotation::new(targets, replace),
            restarts_per_round: share(targets, spec.restart_percent),
            spec,
            config_for: None,
            config: PathBuf::new(),
            next_round: None,
            window_start: None,
            next_sample: None,
            figures: Figures::default(),
        }
    }

    /// Servers the fleet runs: the targets and the spares the config rolls over.
    pub fn servers(&self) -> usize {
        self.rotation.servers()
    }

    /// Tells the fleet which servers start outside the config; returns the first config.
    pub fn prepare(
        &mut self,
        shards: &mut [Shard],
        config_for: ConfigFor,
        config: &Path,
    ) -> anyhow::Result<String> {
        let members: Vec<(usize, String)> = self
            .rotation
            .members()
            .map(|(s, n)| (s, n.to_string()))
            .collect();
        let spares: Vec<usize> = (0..self.servers())
            .filter(|s| !members.iter().any(|(m, _)| m == s))
            .collect();
        tell(shards, spares.iter().map(|s| (*s, format!("removed {s}"))))?;
        let yaml = config_for(&mut members.into_iter());
        self.config_for = Some(config_for);
        self.config = config.to_path_buf();
        Ok(yaml)
    }

    /// The churn clock starts: the first round comes one `--churn-every` from now.
    pub fn start(&mut self) {
        self.next_round = Some(Instant::now() + self.spec.churn_every);
    }

    /// Called every second: a churn round when one is due, and a memory reading when one is
    /// due and `in_window`.
    pub fn tick(
        &mut self,
        receiver: &ChildGuard,
        shards: &mut [Shard],
        in_window: bool,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        if in_window {
            let start = *self.window_start.get_or_insert(now);
            if self.next_sample.is_none_or(|at| now >= at) {
                if let Ok(memory) = procfs::memory(receiver.pid()) {
                    self.figures.rss_samples.push(RssSample {
                        seconds: now.duration_since(start).as_secs_f64(),
                        bytes: memory.rss_bytes,
                    });
                }
                let next = self.next_sample.unwrap_or(now) + self.spec.sample_every;
                self.next_sample = Some(next.max(now + self.spec.sample_every / 2));
            }
        }
        if let Some(due) = self.next_round.filter(|&due| now >= due) {
            self.round(receiver, shards)?;
            self.next_round = Some((due + self.spec.churn_every).max(now));
        }
        Ok(())
    }

    /// One churn round: the next config and SIGHUP, then the restarts.
    fn round(&mut self, receiver: &ChildGuard, shards: &mut [Shard]) -> anyhow::Result<()> {
        let f = &mut self.figures;
        f.rounds += 1;
        let change = self.rotation.advance();
        if let Some(config_for) = &self.config_for {
            let yaml = config_for(
                &mut self
                    .rotation
                    .members()
                    .map(|(server, name)| (server, name.to_string())),
            );
            // Written whole, then renamed: the receiver never reads half a file.
            let partial = self.config.with_extension("partial");
            std::fs::write(&partial, yaml).context("writing the next config")?;
            std::fs::rename(&partial, &self.config).context("replacing the config")?;
        }
        // The fleet first, so the targets' polls are due (or not) from before the reload.
        let removed = change.removed.iter().map(|s| (*s, format!("removed {s}")));
        let added = change.added.iter().map(|(s, _)| (*s, format!("added {s}")));
        tell(shards, removed.chain(added))?;
        signal(receiver, libc::SIGHUP)?;
        f.reloads_sent += 1;
        f.targets_added += change.added.len() as u64;
        f.targets_removed += change.removed.len() as u64;

        let restarts = pick_restarts(&self.rotation, f.rounds, self.restarts_per_round);
        let down_ms = self.spec.restart_down.as_millis();
        f.restarts_sent += restarts.len() as u64;
        tell(
            shards,
            restarts
                .iter()
                .map(|s| (*s, format!("restart {s} {down_ms}"))),
        )
    }

    /// After the window: what the fleet and the receiver's log say of the churn.
    pub fn finish(&mut self, shards: &[ShardReport], log: &Path) {
        let f = &mut self.figures;
        f.restarts_done = shards.iter().map(|s| s.restarts_done).sum();
        f.rebind_failures = shards.iter().map(|s| s.rebind_failures).sum();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        f.reloads_applied = text.matches("configuration reloaded").count() as u64;
        f.reloads_failed = text.matches("reload_failed").count() as u64;
    }
}

/// Sends each (server, command) to the fleet process serving that server.
fn tell(
    shards: &mut [Shard],
    commands: impl Iterator<Item = (usize, String)>,
) -> anyhow::Result<()> {
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); shards.len()];
    for (server, line) in commands {
        let shard = shards
            .iter()
            .position(|s| s.targets.contains(&server))
            .with_context(|| format!("no fleet process serves server {server}"))?;
        if let Some(lines) = lines.get_mut(shard) {
            lines.push(line);
        }
    }
    for (shard, lines) in shards.iter_mut().zip(&lines) {
        if !lines.is_empty() {
            shard.tell(lines)?;
        }
    }
    Ok(())
}

fn signal(receiver: &ChildGuard, signal: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(receiver.pid()).context("receiver pid")?;
    // SAFETY: plain kill(2) on our own child, not yet reaped (the caller checked it runs).
    if unsafe { libc::kill(pid, signal) } != 0 {
        anyhow::bail!("kill({pid}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The memory readings in a few figures: MB, and the least-squares line in MB per hour.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RssSummary {
    pub samples: usize,
    pub first_mb: f64,
    pub last_mb: f64,
    pub min_mb: f64,
    pub max_mb: f64,
    /// slope: MB per hour; intercept: MB at the window's start.
    pub fit: Option<Fit>,
}

impl RssSummary {
    pub fn of(samples: &[RssSample]) -> Option<RssSummary> {
        let mb = |s: &RssSample| s.bytes as f64 / 1e6;
        let (first, last) = (samples.first()?, samples.last()?);
        let points: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (s.seconds / 3600.0, mb(s)))
            .collect();
        Some(RssSummary {
            samples: samples.len(),
            first_mb: mb(first),
            last_mb: mb(last),
            min_mb: points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
            max_mb: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
            fit: fit(&points),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub soak: SoakSpec,
    pub servers: usize,
    pub replaced_per_round: usize,
    pub restarted_per_round: usize,
    pub churn: Figures,
    pub rss: Option<RssSummary>,
    pub run: RunReport,
}

impl SoakReport {
    pub fn new(soak: Soak, run: RunReport) -> SoakReport {
        let replaced = share(run.targets, soak.spec.replace_percent);
        SoakReport {
            servers: soak.servers(),
            replaced_per_round: replaced,
            restarted_per_round: soak.restarts_per_round,
            rss: RssSummary::of(&soak.figures.rss_samples),
            soak: soak.spec,
            churn: soak.figures,
            run,
        }
    }
}

pub fn print(r: &SoakReport) {
    crate::report::print_run(&r.run);
    let c = &r.churn;
    println!();
    println!(
        "soak: churn every {} s: {} of {} targets replaced (reload), {} supervisords restarted \
         (down {} s); {} fleet servers",
        r.soak.churn_every.as_secs_f64(),
        r.replaced_per_round,
        thousands(r.run.targets as u64),
        r.restarted_per_round,
        r.soak.restart_down.as_secs_f64(),
        thousands(r.servers as u64),
    );
    println!(
        "  rounds                       {:>14}   since every target was polled once (warm-up \
         included)",
        c.rounds
    );
    println!(
        "  reloads                      {:>14}   sent; {} applied, {} failed; {} targets added, \
         {} removed",
        c.reloads_sent,
        c.reloads_applied,
        c.reloads_failed,
        thousands(c.targets_added),
        thousands(c.targets_removed)
    );
    println!(
        "  supervisord restarts         {:>14}   sent; {} done, {} could not listen again",
        c.restarts_sent, c.restarts_done, c.rebind_failures
    );
    match &r.rss {
        Some(rss) => {
            println!(
                "  receiver RSS over the window {:>14}   readings every {} s",
                rss.samples,
                r.soak.sample_every.as_secs_f64()
            );
            println!(
                "    first {:.1} MB, last {:.1} MB, min {:.1} MB, max {:.1} MB",
                rss.first_mb, rss.last_mb, rss.min_mb, rss.max_mb
            );
            match rss.fit {
                Some(f) => println!(
                    "    least-squares slope {:+.2} MB per hour (R^2 {:.3}), {:.1} MB at the start",
                    f.slope, f.r_squared, f.intercept
                ),
                None => println!("    slope: fewer than two readings"),
            }
        }
        None => println!("  receiver RSS: no reading"),
    }
    println!(
        "  peak RSS over the receiver's life {}",
        megabytes(r.run.receiver_peak_rss_bytes)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_readings_summarise_in_mb_per_hour() {
        // 100 MB rising 2 MB per 15 minutes: 8 MB per hour, a perfect line.
        let rising: Vec<RssSample> = (0..=8)
            .map(|k| RssSample {
                seconds: k as f64 * 900.0,
                bytes: 100_000_000 + k * 2_000_000,
            })
            .collect();
        let s = RssSummary::of(&rising).unwrap();
        let f = s.fit.unwrap();
        assert!((f.slope - 8.0).abs() < 1e-9, "{}", f.slope);
        assert!((f.intercept - 100.0).abs() < 1e-9);
        assert!((f.r_squared - 1.0).abs() < 1e-9);
        assert_eq!(s.samples, 9);
        assert_eq!(
            (s.first_mb, s.last_mb, s.min_mb, s.max_mb),
            (100.0, 116.0, 100.0, 116.0)
        );

        // Noise around a flat level: a slope near 0, a poor fit, min and max apart from the
        // ends.
        let flat: Vec<RssSample> = [100, 103, 99, 102, 100, 101, 98, 101]
            .iter()
            .enumerate()
            .map(|(k, mb)| RssSample {
                seconds: k as f64 * 450.0,
                bytes: mb * 1_000_000,
            })
            .collect();
        let s = RssSummary::of(&flat).unwrap();
        let f = s.fit.unwrap();
        assert!(f.slope.abs() < 2.0, "{}", f.slope);
        assert!(f.r_squared < 0.5, "{}", f.r_squared);
        assert_eq!(
            (s.first_mb, s.last_mb, s.min_mb, s.max_mb),
            (100.0, 101.0, 98.0, 103.0)
        );

        assert!(RssSummary::of(&[]).is_none());
    }
}
