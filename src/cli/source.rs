//! Where the settings come from, for every command that loads them: `--config FILE` (or a
//! directory of files), or without it the local supervisord, found through supervisord's own
//! configuration (`--supervisord-conf FILE`, else where supervisorctl looks); and, for `run`,
//! the shard of the targets this receiver keeps (`--shard`, `SUPERVISORD_RECEIVER_SHARD`).
//!
//! A reload reads the same source again: the same file or directory, the same supervisord.conf
//! (not searched again), and keeps the same shard.

use std::path::{Path, PathBuf};

use crate::config::{self, supervisord_conf, ConfigError};
use crate::settings::shard::{Shard, SHARD_VARIABLE};
use crate::settings::Settings;

/// What the settings are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--config FILE` or `--config DIR`.
    Config(PathBuf),
    /// supervisord's configuration: named by `--supervisord-conf`, or found where supervisorctl
    /// looks (`searched`).
    Supervisord { file: PathBuf, searched: bool },
}

/// Where the settings come from, and the shard to keep of their targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: Origin,
    pub shard: Option<Shard>,
}

/// Settings as loaded, with what to tell at start (or at a reload) besides their warnings.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// Said at INFO: where the target came from, how many targets the shard took.
    pub notes: Vec<String>,
}

impl Source {
    /// From the command line: `--config`, else `--supervisord-conf`, else the first file of
    /// supervisorctl's search list that exists.
    pub fn new(
        config: Option<&Path>,
        supervisord_conf: Option<&Path>,
    ) -> Result<Source, ConfigError> {
        let origin = match (config, supervisord_conf) {
            (Some(config), _) => Origin::Config(config.to_path_buf()),
            (None, Some(file)) => Origin::Supervisord {
                file: file.to_path_buf(),
                searched: false,
            },
            (None, None) => Origin::Supervisord {
                file: supervisord_conf::locate()?,
                searched: true,
            },
        };
        Ok(Source {
            origin,
            shard: None,
        })
    }

    pub fn with_shard(mut self, shard: Option<Shard>) -> Source {
        self.shard = shard;
        self
    }

    /// The file or directory read, to name it in messages.
    pub fn path(&self) -> &Path {
        match &self.origin {
            Origin::Config(path) => path,
            Origin::Supervisord { file, .. } => file,
        }
    }

    /// Reads the settings, keeping this shard's targets.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut notes = Vec::new();
        let mut settings = match &self.origin {
            Origin::Config(path) => config::load(path)?,
            Origin::Supervisord { file, searched } => {
                let found = supervisord_conf::load(file)?;
                let how = if *searched {
                    "no --config; found supervisord's configuration where supervisorctl looks"
                } else {
                    "no --config; reading supervisord's configuration"
                };
                notes.push(format!("{how}: {}", found.described));
                found.settings
            }
        };
        if let Some(shard) = self.shard {
            let total = settings.targets.len();
            settings.targets.retain(|target| shard.keeps(&target.name));
            let kept = settings.targets.len();
            notes.push(format!(
                "shard {shard}: {kept} of the {total} target{} fall to this receiver",
                if total == 1 { "" } else { "s" }
            ));
            if kept == 0 {
                settings.warnings.push(format!(
                    "shard {shard} has none of the {total} target{}: this receiver polls \
                     nothing until a reload brings one (more receivers than targets?)",
                    if total == 1 { "" } else { "s" }
                ));
            }
        }
        Ok(Loaded { settings, notes })
    }
}

impl From<&Path> for Source {
    /// `--config PATH`, every target.
    fn from(path: &Path) -> Source {
        Source {
            origin: Origin::Config(path.to_path_buf()),
            shard: None,
        }
    }
}

impl From<&Source> for Source {
    fn from(source: &Source) -> Source {
        source.clone()
    }
}

/// The shard for `run`: `--shard`, else `SUPERVISORD_RECEIVER_SHARD` when set and not empty.
pub fn shard(
    flag: Option<Shard>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, String> {
    if flag.is_some() {
        return Ok(flag);
    }
    match env(SHARD_VARIABLE).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(text) => Shard::parse(&text)
            .map(Some)
            .map_err(|message| format!("{SHARD_VARIABLE}: {message}")),
    }
}

/// `--shard`'s value parser (clap quotes the value itself).
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text).map_err(|message| match message.split_once("': ") {
        Some((_, reason)) if message.starts_with("invalid shard '") => reason.to_string(),
        _ => message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn names(settings: &Settings) -> Vec<String> {
        settings.targets.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn each_shard_keeps_its_targets_at_start_and_at_every_reload() {
        let dir = tempfile::tempdir().unwrap();
        let targets = |n: usize| {
            let mut text = String::from("exporters: {debug: {}}\ntargets:\n");
            for i in 0..n {
                text.push_str(&format!(
                    "  - {{name: t{i}, endpoint: 'http://h:{}'}}\n",
                    i + 1
                ));
            }
            text
        };
        let path = write(dir.path(), "r.yaml", &targets(30));
        let source = |index| Source {
            origin: Origin::Config(path.clone()),
            shard: Some(Shard { index, count: 3 }),
        };
        let load = |index| source(index).load().unwrap_or_else(|e| panic!("{e}"));
        let mut all: Vec<String> = (0..3).flat_map(|i| names(&load(i).settings)).collect();
        all.sort();
        assert_eq!(all.len(), 30);
        all.dedup();
        assert_eq!(all.len(), 30, "each target in exactly one shard");
        let loaded = load(1);
        assert!(
            loaded.notes.iter().any(|n| n
                == &format!(
                    "shard 1/3: {} of the 30 targets fall to this receiver",
                    loaded.settings.targets.len()
                )),
            "{:?}",
            loaded.notes
        );
        // A reload loads the same source again: the new file, the same shard.
        write(dir.path(), "r.yaml", &targets(60));
        let reloaded = load(1);
        assert!(reloaded
            .settings
            .targets
            .iter()
            .all(|t| Shard { index: 1, count: 3 }.keeps(&t.name)));
        assert!(reloaded.settings.targets.len() > loaded.settings.targets.len());
    }

    #[test]
    fn an_empty_shard_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "r.yaml",
            "exporters: {debug: {}}\ntargets: [{name: only, endpoint: 'http://h'}]\n",
        );
        let owner = crate::settings::shard::shard_of("only", 2);
        let source = Source {
            origin: Origin::Config(path),
            shard: Some(Shard {
                index: 1 - owner,
                count: 2,
            }),
        };
        let loaded = source.load().unwrap();
        assert!(loaded.settings.targets.is_empty());
        assert!(loaded
            .settings
            .warnings
            .iter()
            .any(|w| w.contains("has none of the 1 target")));
    }

    #[test]
    fn the_flag_wins_over_the_variable() {
        let set = |value: &'static str| {
            move |name: &str| (name == SHARD_VARIABLE).then(|| value.to_string())
        };
        let two = Shard { index: 2, count: 3 };
        assert_eq!(shard(Some(two), &set("0/3")), Ok(Some(two)));
        assert_eq!(
            shard(None, &set("receiver-1/3")),
            Ok(Some(Shard { index: 1, count: 3 }))
        );
        assert_eq!(shard(None, &set(" ")), Ok(None));
        assert_eq!(shard(None, &|_| None), Ok(None));
        let error = shard(None, &set("3/3")).unwrap_err();
        assert!(
            error.starts_with("SUPERVISORD_RECEIVER_SHARD: invalid shard '3/3'"),
            "{error}"
        );
    }
}
