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

/// The stream a line of program output came from, as the OpenTelemetry semantic conventions
/// name it.
pub static LOG_IOSTREAM: AttributeDef = AttributeDef {
    key: "log.iostream",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "The stream the program wrote the line to: `stdout` or `stderr`.",
};

pub static CUT_BYTES: AttributeDef = AttributeDef {
    key: "cut_bytes",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "Bytes cut off the end of a line longer than `max_line_bytes` (integer); \
                  absent when the line is whole.",
};

pub static SKIPPED_BYTES: AttributeDef = AttributeDef {
    key: "skipped_bytes",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "Bytes of output passed over unread (integer).",
};

/// A log event of the table; `id as usize` is its index in [`EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventId {
    ProcessStateChange,
    SupervisorStateChange,
    ProcessOutput,
    ProcessOutputSkipped,
    SupervisorLog,
}

impl EventId {
    pub const ALL: [EventId; 5] = [
        EventId::ProcessStateChange,
        EventId::SupervisorStateChange,
        EventId::ProcessOutput,
        EventId::ProcessOutputSkipped,
        EventId::SupervisorLog,
    ];

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
    /// The record's `event_name`, when [`is_event`](Self::is_event); otherwise only the name
    /// the documentation gives the records.
    pub name: &'static str,
    /// Whether records carry the name as their `event_name`: events do; lines of output are
    /// not events (the OpenTelemetry log data model keeps `event_name` for events) and go
    /// without, which also saves its bytes on every line.
    pub is_event: bool,
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
        is_event: true,
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
        is_event: true,
        attributes: &[&SUPERVISORD_STATE, &SUPERVISORD_PREVIOUS_STATE],
        severity: "WARN when supervisord leaves RUNNING, INFO otherwise",
        description: "supervisord itself changed state (RUNNING, RESTARTING, SHUTDOWN, FATAL).",
    },
    EventDef {
        id: EventId::ProcessOutput,
        name: "supervisord.process.output",
        is_event: false,
        attributes: &[&PROCESS, &GROUP, &LOG_IOSTREAM, &CUT_BYTES],
        severity: "none (unspecified): the line carries its own level, if any",
        description: "One line a program wrote to stdout or stderr (targets with `output:`), \
                      read through supervisord's log API; the body is the line as text, \
                      without its newline, colour codes or other control characters. No \
                      `event_name`.",
    },
    EventDef {
        id: EventId::ProcessOutputSkipped,
        name: "supervisord.process.output.skipped",
        is_event: true,
        attributes: &[&PROCESS, &GROUP, &LOG_IOSTREAM, &SKIPPED_BYTES],
        severity: "WARN",
        description: "The program wrote faster than its output is read: more than \
                      `max_backlog_bytes` waited, and the oldest were passed over (up to the \
                      next whole line).",
    },
    EventDef {
        id: EventId::SupervisorLog,
        name: "supervisord.log",
        is_event: false,
        attributes: &[],
        severity: "none (unspecified): the line carries supervisord's level (`INFO`, `WARN` …)",
        description: "One line of supervisord's own log (targets with `output: { main_log: \
                      true }`), read through `readLog`. No `event_name`.",
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
