//! `--soak`'s churn plan, as production sees it: which targets the receiver's config holds
//! after each churn round (a rolling subset of the fleet) and which supervisords restart.
//!
//! Pure bookkeeping, no I/O: the orchestrator (`soak.rs`) writes the config, sends SIGHUP and
//! tells the fleet.
//!
//! The fleet has more servers than the config has targets: `targets + 2 x step` of them, so a
//! server leaves the config for two rounds before it comes back. A target that comes back is
//! given a name it never had (`host-00042-17`: server 42, added in round 17), as a new host
//! would be, so any state the receiver keeps by target name and forgets to drop grows with
//! the run instead of being reused.

use std::collections::VecDeque;

use crate::run::target_name;

/// The targets in the receiver's config, oldest first: (server index, target name).
#[derive(Debug, Clone)]
pub struct Rotation {
    servers: usize,
    step: usize,
    members: VecDeque<(usize, String)>,
    /// The server the next round adds first.
    next: usize,
    round: u64,
}

/// What one round changed: servers added to the config (with their new names) and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<(usize, String)>,
    pub removed: Vec<usize>,
}

impl Rotation {
    /// The first config: servers `0..targets`, named as a run without churn names them.
    /// `step` targets are replaced per round (at most `targets`).
    pub fn new(targets: usize, step: usize) -> Rotation {
        let step = step.min(targets);
        Rotation {
            servers: targets + 2 * step,
            step,
            members: (0..targets).map(|t| (t, target_name(t))).collect(),
            next: targets,
            round: 0,
        }
    }

    /// Servers the fleet must run: the config's targets and those resting between two turns.
    pub fn servers(&self) -> usize {
        self.servers
    }

    pub fn members(&self) -> impl Iterator<Item = (usize, &str)> {
        self.members.iter().map(|(s, n)| (*s, n.as_str()))
    }

    /// One round: the `step` oldest targets leave, the next `step` servers join.
    pub fn advance(&mut self) -> Change {
        self.round += 1;
        let mut change = Change::default();
        for _ in 0..self.step {
            if let Some((server, _)) = self.members.pop_front() {
                change.removed.push(server);
            }
        }
        for _ in 0..self.step {
            let server = self.next;
            self.next = (self.next + 1) % self.servers.max(1);
            let name = format!("{}-{}", target_name(server), self.round);
            self.members.push_back((server, name.clone()));
            change.added.push((server, name));
        }
        change
    }
}

/// `count` distinct servers of the config to restart in `round`, spread over it and moving
/// from round to round.
pub fn pick_restarts(rotation: &Rotation, round: u64, count: usize) -> Vec<usize> {
    let members: Vec<usize> = rotation.members().map(|(s, _)| s).collect();
    let count = count.min(members.len());
    if count == 0 {
        return Vec::new();
    }
    let stride = members.len() / count;
    // A prime offset per round, so the same servers are not picked every round.
    let offset = (round as usize).wrapping_mul(7_919) % members.len();
    (0..count)
        .filter_map(|k| members.get((offset + k * stride) % members.len()).copied())
        .collect()
}

/// How many of `total` make `percent` %, rounded, at least 1 when `percent` is above 0.
pub fn share(total: usize, percent: f64) -> usize {
    if percent <= 0.0 || total == 0 {
        return 0;
    }
    ((total as f64 * percent / 100.0).round() as usize).clamp(1, total)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_config_rolls_over_the_fleet_with_new_names() {
        let mut rotation = Rotation::new(10, 2);
        assert_eq!(rotation.servers(), 14);
        let first: Vec<usize> = rotation.members().map(|(s, _)| s).collect();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_eq!(
            rotation.members().next().map(|(_, n)| n),
            Some("host-00000")
        );

        let change = rotation.advance();
        assert_eq!(change.removed, vec![0, 1]);
        assert_eq!(
            change.added,
            vec![
                (10, "host-00010-1".to_string()),
                (11, "host-00011-1".to_string())
            ]
        );
        let mut names = BTreeSet::new();
        for round in 2..=40 {
            let change = rotation.advance();
            let members: Vec<usize> = rotation.members().map(|(s, _)| s).collect();
            // Always the same size, no server twice, none added while still a member.
            assert_eq!(members.len(), 10);
            assert_eq!(members.iter().collect::<BTreeSet<_>>().len(), 10);
            assert!(members.iter().all(|&s| s < 14));
            for (server, name) in &change.added {
                assert!(!change.removed.contains(server), "round {round}: {server}");
                assert!(names.insert(name.clone()), "round {round}: {name} reused");
            }
        }
        // Servers come back: 40 rounds of 2 went around the 14 servers several times.
        assert!(names.iter().any(|n| n.starts_with("host-00000-")));
    }

    #[test]
    fn restarts_are_distinct_members_and_move() {
        let rotation = Rotation::new(100, 5);
        let members: BTreeSet<usize> = rotation.members().map(|(s, _)| s).collect();
        let one = pick_restarts(&rotation, 1, 4);
        let two = pick_restarts(&rotation, 2, 4);
        assert_eq!(one.len(), 4);
        assert_eq!(one.iter().collect::<BTreeSet<_>>().len(), 4);
        assert!(one.iter().all(|s| members.contains(s)));
        assert_ne!(one, two);
        assert_eq!(pick_restarts(&rotation, 3, 500).len(), 100);
        assert!(pick_restarts(&rotation, 3, 0).is_empty());
    }

    #[test]
    fn shares_round_and_keep_at_least_one() {
        assert_eq!(share(2000, 5.0), 100);
        assert_eq!(share(2000, 2.0), 40);
        assert_eq!(share(10, 2.0), 1);
        assert_eq!(share(10, 0.0), 0);
        assert_eq!(share(10, 500.0), 10);
    }
}
