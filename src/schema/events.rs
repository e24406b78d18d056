//! The one definition of every log event the receiver emits (OTLP log records with an
//! `event_name`): name, attributes, severities and description. The translation
//! ([`crate::logs`]) and the generated `docs/metrics.md` read this table; nothing else spells an
//! event name or one of its attribute keys.

use super::definitions::{AttributeDef, AttributeLevel, AttributeValues, GROUP, PROCESS, STATUS};

/// One definition with the exit count's attribute (`supervisord.process.exits`), re-exported so
/// the events' attributes are all found here.
pub use super::definitions::EXPECTED;

/// A process's new state (the same key as the metrics' `state`).
pub static STATE: AttributeDef = AttributeDef {
    key: "state",
    level: AttributeLevel::Point,
    values: AttributeValues::ProcessState,
    description: "The state the process entered.",
};

pub static PREVIOUS_STATE: AttributeDef = AttributeDef {
    key: "previous_state",
    level: AttributeLevel::Point,
    values: AttributeValues::ProcessState,
    description: "The state the process left.",
};

pub static PID: AttributeDef = AttributeDef {
    key: "pid",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "The process id, when the process runs (integer).",
};

pub static EXIT_STATUS: AttributeDef = AttributeDef {
    key: "exit_status",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "The exit status of the exit that led here (integer).",
};

pub static SPAWNERR: AttributeDef = AttributeDef {
    key: "spawnerr",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "supervisord's reason a spawn failed, when it gave one.",
};

pub static RESTARTED: AttributeDef = AttributeDef {
    key: "restarted",
    level: AttributeLevel::Point,
    values: AttributeValues::Bool,
    description: "true when the state is the same as at the previous poll but the process \
                  started again in between (a crash and restart between two polls).",
};

pub static SUPERVISORD_STATE: AttributeDef = AttributeDef {
    key: "state",
    level: AttributeLevel::Point,
    values: AttributeValues::SupervisorState,
    description: "The state supervisord entered.",
};

pub static SUPERVISORD_PREVIOUS_STATE: AttributeDef = AttributeDef {
    key: "previous_state",
    level: AttributeLevel::Point,
    values: AttributeValues::SupervisorState,
    description: "The state supervisord left.",
};

/// A log event of the table; `id as usize` is its index in [`EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventId {
    ProcessStateChange,
    SupervisorStateChange,
}

impl EventId {
    pub const ALL: [EventId; 2] = [EventId::ProcessStateChange, EventId::SupervisorStateChange];

    pub fn def(self) -> &'static EventDef {
        &EVENTS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct EventDef {
    pub id: EventId,
    /// The record's `event_name`.
    pub name: &'static str,
    /// Attributes in the order they are attached; the optional ones only when they apply.
    pub attributes: &'static [&'static AttributeDef],
    /// How the severity is chosen, for the documentation.
    pub severity: &'static str,
    pub description: &'static str,
}

/// Every log event, in documentation order.
pub static EVENTS: [EventDef; EventId::ALL.len()] = [
    EventDef {
        id: EventId::ProcessStateChange,
        name: "supervisord.process.state_change",
        attributes: &[
            &PROCESS,
            &GROUP,
            &STATE,
            &PREVIOUS_STATE,
            &STATUS,
            &PID,
            &EXIT_STATUS,
            &EXPECTED,
            &SPAWNERR,
            &RESTARTED,
        ],
        severity: "ERROR for FATAL and for an unexpected exit (push mode: `expected` false; \
                   polling: a non-zero exit status); WARN for BACKOFF and a restart between \
                   polls after a zero exit; INFO otherwise",
        description: "A process changed state: one record per transition (push mode), or per \
                      change seen between two polls (polling mode).",
    },
    EventDef {
        id: EventId::SupervisorStateChange,
        name: "supervisord.state_change",
        attributes: &[&SUPERVISORD_STATE, &SUPERVISORD_PREVIOUS_STATE],
        severity: "WARN when supervisord leaves RUNNING, INFO otherwise",
        description: "supervisord itself changed state (RUNNING, RESTARTING, SHUTDOWN, FATAL).",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_index_the_table_and_names_are_unique() {
        let mut names = HashSet::new();
        for (i, id) in EventId::ALL.into_iter().enumerate() {
            assert_eq!(id as usize, i);
            assert_eq!(EVENTS[i].id, id);
            assert!(names.insert(id.name()));
            assert!(id.name().starts_with("supervisord."));
        }
    }

    /// An event attribute whose key a metric attribute has is that very definition, unless
    /// its meaning differs (`state` here is the state a process or supervisord entered).
    #[test]
    fn attributes_shared_with_the_metrics_are_defined_once() {
        use crate::schema::definitions::ATTRIBUTES;
        let differs: [&AttributeDef; 2] = [&STATE, &SUPERVISORD_STATE];
        for event in &EVENTS {
            for attribute in event.attributes {
                let metric_keys = ATTRIBUTES.iter().any(|a| a.key == attribute.key);
                let same = ATTRIBUTES.iter().any(|a| std::ptr::eq(*a, *attribute));
                let allowed = differs.iter().any(|a| std::ptr::eq(*a, *attribute));
                assert!(
                    !metric_keys || same || allowed,
                    "{}: '{}' is defined twice",
                    event.name,
                    attribute.key
                );
            }
        }
    }

    #[test]
    fn attribute_keys_are_unique_per_event() {
        for event in &EVENTS {
            let keys: HashSet<_> = event.attributes.iter().map(|a| a.key).collect();
            assert_eq!(keys.len(), event.attributes.len(), "{}", event.name);
        }
    }
}
