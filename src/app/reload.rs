//! What a reload (SIGHUP) changes: which targets are added, changed, removed or kept, told
//! apart by a fingerprint of their settings, and which settings only a restart applies.
//!
//! An unchanged target keeps its task, connection and schedule; a changed one is restarted; a
//! removed one is stopped and its self-telemetry forgotten; a new one starts after
//! `initial_delay`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::settings::{ExporterSettings, Settings, Target};

/// How a reload changes the running targets, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) added: Vec<String>,
    pub(super) changed: Vec<String>,
    pub(super) removed: Vec<String>,
    pub(super) unchanged: usize,
}

impl Plan {
    pub(super) fn new<'a>(
        current: &BTreeMap<&str, Fingerprint>,
        wanted: impl Iterator<Item = (&'a str, Fingerprint)>,
    ) -> Plan {
        let mut plan = Plan::default();
        let mut kept = BTreeSet::new();
        for (name, fingerprint) in wanted {
            kept.insert(name);
            match current.get(name) {
                None => plan.added.push(name.to_string()),
                Some(running) if *running != fingerprint => plan.changed.push(name.to_string()),
                Some(_) => plan.unchanged += 1,
            }
        }
        plan.removed = current
            .keys()
            .filter(|name| !kept.contains(*name))
            .map(|name| name.to_string())
            .collect();
        plan
    }

    pub(super) fn starts(&self, name: &str) -> bool {
        self.added.iter().chain(&self.changed).any(|n| n == name)
    }
}

/// Identifies a configuration by value without keeping it: a hash of its `Debug` form (which
/// covers every field, present and future, regexes by pattern) and of the secrets that form
/// masks, so a changed password counts as a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint(u64);

impl Fingerprint {
    pub(super) fn of(target: &Target) -> Fingerprint {
        let mut hasher = DefaultHasher::new();
        format!("{target:?}").hash(&mut hasher);
        if let Some(credentials) = &target.credentials {
            credentials.password.expose().hash(&mut hasher);
        }
        Fingerprint(hasher.finish())
    }

    fn of_debug(value: &impl std::fmt::Debug, secrets: &[&str]) -> Fingerprint {
        let mut hasher = DefaultHasher::new();
        format!("{value:?}").hash(&mut hasher);
        secrets.hash(&mut hasher);
        Fingerprint(hasher.finish())
    }
}

/// The settings a reload does not apply, by section, to name what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RestartOnly {
    sections: Vec<(&'static str, Fingerprint)>,
    /// Everything but the targets and `initial_delay` (which reloaded targets use), for
    /// settings added after this list was written.
    rest: Fingerprint,
}

impl RestartOnly {
    pub(super) fn of(settings: &Settings) -> RestartOnly {
        let header_values: Vec<&str> = settings
            .exporters
            .iter()
            .flat_map(|exporter| match exporter {
                ExporterSettings::Otlp(otlp) => otlp.headers.as_slice(),
                _ => &[],
            })
            .map(|(_, value)| value.expose())
            .collect();
        let mut rest = settings.clone();
        rest.targets.clear();
        rest.warnings.clear();
        rest.initial_delay = Duration::ZERO;
        RestartOnly {
            sections: vec![
                ("format", Fingerprint::of_debug(&settings.format, &[])),
                (
                    "exporters",
                    Fingerprint::of_debug(&settings.exporters, &header_values),
                ),
                ("metrics", Fingerprint::of_debug(&settings.metrics, &[])),
                ("telemetry", Fingerprint::of_debug(&settings.telemetry, &[])),
                ("health", Fingerprint::of_debug(&settings.health, &[])),
                ("admin", Fingerprint::of_debug(&settings.admin, &[])),
                (
                    "metrics_temporality",
                    Fingerprint::of_debug(&settings.temporality, &[]),
                ),
                ("logs", Fingerprint::of_debug(&settings.logs, &[])),
            ],
            rest: Fingerprint::of_debug(&rest, &header_values),
        }
    }

    /// The names of the sections that differ; "other settings" when only the rest does.
    pub(super) fn changed(&self, new: &RestartOnly) -> Vec<&'static str> {
        let mut changed: Vec<&'static str> = self
            .sections
            .iter()
            .zip(&new.sections)
            .filter(|(old, new)| old != new)
            .map(|((name, _), _)| *name)
            .collect();
        if changed.is_empty() && self.rest != new.rest {
            changed.push("other settings");
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_bytes;
    use crate::settings::secret::Secret;
    use crate::settings::Credentials;

    fn settings(text: &str) -> Settings {
        load_bytes(std::path::Path::new("r.yaml"), text.as_bytes(), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "targets:\n  - {name: a, endpoint: 'http://127.0.0.1:1'}\n  \
                        - {name: b, endpoint: 'http://127.0.0.1:2'}\nexporters: {debug: {}}\n";

    fn fingerprints(s: &Settings) -> BTreeMap<String, Fingerprint> {
        s.targets
            .iter()
            .map(|t| (t.name.clone(), Fingerprint::of(t)))
            .collect()
    }

    fn plan(old: &Settings, new: &Settings) -> Plan {
        let old = fingerprints(old);
        let current = old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let new = fingerprints(new);
        Plan::new(&current, new.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    #[test]
    fn a_reload_sorts_targets_into_added_changed_removed_and_kept() {
        let old = settings(BASE);
        let new = settings(
            "targets:\n  - {name: a, endpoint: 'http://127.0.0.1:1'}\n  \
             - {name: b, endpoint: 'http://127.0.0.1:2', include: {regex: ['^w']}}\n  \
             - {name: c, endpoint: 'http://127.0.0.1:3'}\nexporters: {debug: {}}\n",
        );
        assert_eq!(
            plan(&old, &new),
            Plan {
                added: vec!["c".into()],
                changed: vec!["b".into()],
                removed: vec![],
                unchanged: 1,
            }
        );
        let fewer = settings(
            "targets:\n  - {name: b, endpoint: 'http://127.0.0.1:2'}\nexporters: {debug: {}}\n",
        );
        assert_eq!(
            plan(&old, &fewer),
            Plan {
                removed: vec!["a".into()],
                unchanged: 1,
                ..Plan::default()
            }
        );
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let old = settings(BASE);
        let new = settings(BASE);
        assert_eq!(
            plan(&old, &new),
            Plan {
                unchanged: 2,
                ..Plan::default()
            }
        );
        assert!(RestartOnly::of(&old)
            .changed(&RestartOnly::of(&new))
            .is_empty());
    }

    #[test]
    fn a_new_password_is_a_change_though_it_prints_as_stars() {
        let mut target = settings(BASE).targets.remove(0);
        target.credentials = Some(Credentials {
            username: "u".into(),
            password: Secret::new("one"),
        });
        let before = Fingerprint::of(&target);
        target.credentials = Some(Credentials {
            username: "u".into(),
            password: Secret::new("two"),
        });
        assert_ne!(before, Fingerprint::of(&target));
    }

    #[test]
    fn sections_that_need_a_restart_are_named() {
        let old = RestartOnly::of(&settings(BASE));
        let with = |extra: &str| RestartOnly::of(&settings(&format!("{BASE}{extra}")));
        assert_eq!(
            old.changed(&with("telemetry: {interval: 3s}\n")),
            ["telemetry"]
        );
        assert_eq!(
            old.changed(&with("metrics: {supervisord.state: {enabled: false}}\n")),
            ["metrics"]
        );
        assert_eq!(old.changed(&with("health: {}\n")), ["health"]);
        assert_eq!(old.changed(&with("admin: {}\n")), ["admin"]);
        // Timing settings reach targets (changed) or only new targets (initial_delay).
        assert!(old.changed(&with("initial_delay: 5s\n")).is_empty());
        let grpc = |key: &str| {
            RestartOnly::of(&settings(&format!(
                "targets: [{{name: a, endpoint: 'http://h'}}]\nexporters:\n  otlp:\n    \
                 endpoint: http://localhost:4317\n    headers: {{x-key: {key}}}\n"
            )))
        };
        assert_eq!(grpc("one").changed(&grpc("two")), ["exporters"]);
    }
}
