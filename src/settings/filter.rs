//! Which processes a target monitors: Datadog's single-pass rule, plus group filters.
//!
//! A process is included when no include filter is set, or when its name is in `names`, or a
//! pattern in `regex` matches it anywhere (unanchored, as Python's `re.search`), or its group is
//! in `groups`. It is then dropped when any exclude filter matches. Exclusions always win.
//!
//! The patterns are the native format's (regex crate syntax) or the Datadog format's (Python
//! syntax); a Python pattern that gives up on a name (too much backtracking) does not match it,
//! so it neither includes nor excludes that process (see [`NamePattern`]).

use crate::settings::pattern::NamePattern;
use crate::vocab::ProcessInfo;

#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    pub names: Vec<String>,
    pub regex: Vec<NamePattern>,
    pub groups: Vec<String>,
    pub names_exclude: Vec<String>,
    pub regex_exclude: Vec<NamePattern>,
    pub groups_exclude: Vec<String>,
}

impl ProcessFilter {
    fn has_includes(&self) -> bool {
        !(self.names.is_empty() && self.regex.is_empty() && self.groups.is_empty())
    }

    pub fn monitors(&self, process: &ProcessInfo) -> bool {
        let name = process.name.as_str();
        let included = !self.has_includes()
            || self.names.iter().any(|n| n == name)
            || self.regex.iter().any(|r| r.is_match(name))
            || self.groups.contains(&process.group);
        if !included {
            return false;
        }
        let excluded = self.names_exclude.iter().any(|n| n == name)
            || self.regex_exclude.iter().any(|r| r.is_match(name))
            || self.groups_exclude.contains(&process.group);
        !excluded
    }

    /// Keeps supervisord's order; each process is visited once, so no duplicates.
    pub fn apply(&self, processes: Vec<ProcessInfo>) -> Vec<ProcessInfo> {
        processes.into_iter().filter(|p| self.monitors(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procs(names: &[(&str, &str)]) -> Vec<ProcessInfo> {
        names
            .iter()
            .map(|(n, g)| ProcessInfo {
                name: n.to_string(),
                group: g.to_string(),
                ..Default::default()
            })
            .collect()
    }

    fn names(p: &[ProcessInfo]) -> Vec<&str> {
        p.iter().map(|p| p.name.as_str()).collect()
    }

    fn re(s: &str) -> NamePattern {
        NamePattern::rust(regex::Regex::new(s).unwrap())
    }

    fn py(s: &str) -> NamePattern {
        NamePattern::python(s).unwrap()
    }

    #[test]
    fn no_filter_keeps_all_in_order() {
        let p = procs(&[("mysql", "a"), ("java", "b"), ("python", "c")]);
        assert_eq!(
            names(&ProcessFilter::default().apply(p)),
            ["mysql", "java", "python"]
        );
    }

    #[test]
    fn includes_are_a_union_and_regex_is_unanchored() {
        let f = ProcessFilter {
            names: vec!["python".into()],
            regex: vec![re("ysq")],
            ..Default::default()
        };
        let p = procs(&[("mysql", "a"), ("java", "b"), ("python", "c")]);
        assert_eq!(names(&f.apply(p)), ["mysql", "python"]);
    }

    #[test]
    fn exclusions_win() {
        let f = ProcessFilter {
            names: vec!["python".into(), "mysql".into()],
            regex_exclude: vec![re("^py")],
            ..Default::default()
        };
        let p = procs(&[("mysql", "a"), ("java", "b"), ("python", "c")]);
        assert_eq!(names(&f.apply(p)), ["mysql"]);
    }

    #[test]
    fn groups_filter_both_ways() {
        let f = ProcessFilter {
            groups: vec!["workers".into()],
            groups_exclude: vec!["web".into()],
            names: vec!["nginx".into()],
            ..Default::default()
        };
        let p = procs(&[
            ("w0", "workers"),
            ("w1", "workers"),
            ("nginx", "web"),
            ("db", "db"),
        ]);
        assert_eq!(names(&f.apply(p)), ["w0", "w1"]);
    }

    #[test]
    fn names_match_exactly() {
        let f = ProcessFilter {
            names: vec!["mysql".into()],
            ..Default::default()
        };
        let p = procs(&[("mysqld", "a"), ("MySQL", "b"), ("mysql", "c")]);
        assert_eq!(names(&f.apply(p)), ["mysql"]);
    }

    #[test]
    fn python_patterns_filter_both_ways() {
        let f = ProcessFilter {
            regex: vec![py("^(?!web_|worker_)"), py(r"(\w)\1")],
            regex_exclude: vec![py("(?<=_)tmp$")],
            ..Default::default()
        };
        let p = procs(&[
            ("db", "a"),
            ("web_1", "b"),
            ("worker_ssh", "c"),
            ("cron_tmp", "d"),
            ("web_tmp", "e"),
        ]);
        assert_eq!(names(&f.apply(p)), ["db", "worker_ssh"]);
    }

    #[test]
    fn a_pattern_that_gives_up_neither_includes_nor_excludes() {
        let giving_up = || py("^(a|a)+(?=b)c");
        let long = "a".repeat(40);
        let include = ProcessFilter {
            regex: vec![giving_up()],
            ..Default::default()
        };
        assert!(include.apply(procs(&[(&long, "g")])).is_empty());
        let exclude = ProcessFilter {
            regex_exclude: vec![giving_up()],
            ..Default::default()
        };
        assert_eq!(exclude.apply(procs(&[(&long, "g")])).len(), 1);
    }
}
