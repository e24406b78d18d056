//! The one table of metrics and attributes: every name, unit, type, attribute key, description
//! and default enablement is written here and nowhere else.
//!
//! The OTLP builder, the `metrics:` toggles of the native config, the generated
//! `docs/metrics.md` ([`super::docs`]) and the golden tests all read this module, so a metric cannot be renamed in one place and
//! forgotten in another.

use crate::vocab::{ProcessState, Status, SupervisorState};

/// The closed set of values an attribute can take, when there is one. Listed from the model's
/// own `ALL` arrays so the documentation cannot drift from what is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeValues {
    /// Any string (process and group names, the target name).
    Free,
    /// [`Status`] names: `up`, `down`, `unknown`.
    Status,
    /// [`ProcessState`] names: `STOPPED`, ..., `UNKNOWN`.
    ProcessState,
    /// [`SupervisorState`] names: `RUNNING`, `RESTARTING`, `SHUTDOWN`, `FATAL`.
    SupervisorState,
    /// [`CpuMode`] names: `user`, `system`.
    CpuMode,
    /// A boolean, written as an OTLP `bool_value` (not the strings `"true"`/`"false"`):
    /// Datadog's OTLP ingest makes the tag `key:true` or `key:false` of it all the same
    /// (`AsString()` of the value), and other backends keep the type.
    Bool,
    /// The strings `"true"` and `"false"`: a boolean fact written as a string, like the other
    /// labels of the series it rides on, so a query compares it as text in every backend (a
    /// Prometheus label and a Datadog tag are text anyway; a backend that keeps OTLP types
    /// finds `autostart = 'true'`, as the documented queries write it).
    TrueFalse,
}

impl AttributeValues {
    pub fn names(self) -> Vec<&'static str> {
        match self {
            AttributeValues::Free => Vec::new(),
            AttributeValues::Status => Status::ALL.iter().map(|s| s.name()).collect(),
            AttributeValues::ProcessState => ProcessState::ALL.iter().map(|s| s.name()).collect(),
            AttributeValues::SupervisorState => {
                SupervisorState::ALL.iter().map(|s| s.name()).collect()
            }
            AttributeValues::CpuMode => CpuMode::ALL.iter().map(|m| m.name()).collect(),
            AttributeValues::Bool | AttributeValues::TrueFalse => vec!["true", "false"],
        }
    }
}

/// Where a program's CPU time was spent: the `cpu.mode` values of the OpenTelemetry process
/// semantic conventions that /proc tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuMode {
    /// Time running the program's own code (`utime`, children's `cutime` included).
    User,
    /// Time the kernel spent on its behalf (`stime`, children's `cstime` included).
    System,
}

impl CpuMode {
    pub const ALL: [CpuMode; 2] = [CpuMode::User, CpuMode::System];

    pub fn name(self) -> &'static str {
        match self {
            CpuMode::User => "user",
            CpuMode::System => "system",
        }
    }
}

/// Where an attribute is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeLevel {
    /// On the resource: one per target.
    Resource,
    /// On data points.
    Point,
}

impl AttributeLevel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AttributeLevel::Resource => "resource",
            AttributeLevel::Point => "point",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct AttributeDef {
    pub key: &'static str,
    pub level: AttributeLevel,
    pub values: AttributeValues,
    pub description: &'static str,
}

/// The target's configured `name`, spelled as the Datadog README's config example names it.
pub static SUPERVISOR_SERVER: AttributeDef = AttributeDef {
    key: "supervisor_server",
    level: AttributeLevel::Resource,
    values: AttributeValues::Free,
    description: "The target's configured name.",
};

pub static SUPERVISORD_IDENTIFICATION: AttributeDef = AttributeDef {
    key: "supervisord.identification",
    level: AttributeLevel::Resource,
    values: AttributeValues::Free,
    description: "supervisord's `identifier` (`supervisor.getIdentification`), when it answered.",
};

pub static SUPERVISORD_VERSION: AttributeDef = AttributeDef {
    key: "supervisord.version",
    level: AttributeLevel::Resource,
    values: AttributeValues::Free,
    description: "supervisord's version (`supervisor.getSupervisorVersion`), when it answered.",
};

/// Datadog's tag name for the target. Datadog's OTLP ingest does not turn resource attributes
/// into tags for every backend query, so with a Datadog-format config it rides on every point
/// and monitors written against `supervisord_server:<name>` keep working.
pub static SUPERVISORD_SERVER: AttributeDef = AttributeDef {
    key: "supervisord_server",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "The target's configured name; on every point, only with a Datadog-format config.",
};

/// Same key as the Datadog check's process tag.
pub static PROCESS: AttributeDef = AttributeDef {
    key: "supervisord_process",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "The process name.",
};

/// supervisord names a process uniquely only within its group (`group:name`), so the group keeps
/// same-named processes of different groups in separate series; the Datadog check has no such
/// tag.
pub static GROUP: AttributeDef = AttributeDef {
    key: "supervisord_group",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "The process group name.",
};

pub static STATUS: AttributeDef = AttributeDef {
    key: "status",
    level: AttributeLevel::Point,
    values: AttributeValues::Status,
    description: "The mapped process status (after `status_mapping_override`).",
};

pub static PROCESS_STATE: AttributeDef = AttributeDef {
    key: "state",
    level: AttributeLevel::Point,
    values: AttributeValues::ProcessState,
    description: "The supervisord process state.",
};

pub static SUPERVISOR_STATE: AttributeDef = AttributeDef {
    key: "state",
    level: AttributeLevel::Point,
    values: AttributeValues::SupervisorState,
    description: "supervisord's own state.",
};

/// A program's `autostart` from supervisord's configuration, beside its state: `state` says
/// what it is, `autostart` what it is meant to be, so "down, but meant to run" is one query.
pub static AUTOSTART: AttributeDef = AttributeDef {
    key: "autostart",
    level: AttributeLevel::Point,
    values: AttributeValues::TrueFalse,
    description: "The program's `autostart` in supervisord's configuration \
                  (`supervisor.getAllConfigInfo`, asked at the first poll, when the processes \
                  change, after the target was unreachable, and at least every 10 minutes), as \
                  the strings `true` and `false`. Absent while supervisord has not answered, and \
                  in the Datadog format unless the instance sets `autostart_tag: true`.",
};

/// Whether a process's exit was expected: shared by the exit count
/// (`supervisord.process.exits`) and the state-change log event ([`super::events`]), so the
/// key and its meaning are written once.
pub static EXPECTED: AttributeDef = AttributeDef {
    key: "expected",
    level: AttributeLevel::Point,
    values: AttributeValues::Bool,
    description: "Whether the exit status is one of the program's `exitcodes`; only \
                  supervisord's events say, so only push mode sets it.",
};

/// The OpenTelemetry semantic conventions' key (`process.cpu.time`'s attribute).
pub static CPU_MODE: AttributeDef = AttributeDef {
    key: "cpu.mode",
    level: AttributeLevel::Point,
    values: AttributeValues::CpuMode,
    description: "Where the CPU time was spent: running the program (`user`) or in the kernel \
                  on its behalf (`system`).",
};

/// Every attribute, in documentation order.
pub static ATTRIBUTES: [&AttributeDef; 12] = [
    &SUPERVISOR_SERVER,
    &SUPERVISORD_IDENTIFICATION,
    &SUPERVISORD_VERSION,
    &SUPERVISORD_SERVER,
    &PROCESS,
    &GROUP,
    &STATUS,
    &PROCESS_STATE,
    &SUPERVISOR_STATE,
    &AUTOSTART,
    &EXPECTED,
    &CPU_MODE,
];

/// The OTLP data type. Most metrics are gauges: values read from supervisord (or /proc) at each
/// poll. The counts the receiver keeps itself (restarts, exits) and the programs' CPU time are
/// sums, sent with the temporality
/// the configuration prefers (`settings::TemporalityPreference`, which maps a [`CountSource`]
/// to a temporality). (The receiver's own metrics are OpenTelemetry instruments instead:
/// [`SelfInstrument`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    /// An OTLP `Sum`; `monotonic`: it only grows (a count).
    Sum {
        monotonic: bool,
        source: CountSource,
    },
}

impl MetricKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Sum {
                monotonic: true, ..
            } => "monotonic sum",
            MetricKind::Sum {
                monotonic: false, ..
            } => "sum",
        }
    }

    /// Where a sum's count comes from; `None` for a gauge.
    pub fn count_source(self) -> Option<CountSource> {
        match self {
            MetricKind::Gauge => None,
            MetricKind::Sum { source, .. } => Some(source),
        }
    }
}

/// How the receiver arrives at a count, in the terms of the OpenTelemetry specification's
/// instruments: it decides which temporality the `lowmemory` preference gives the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountSource {
    /// Derived by comparing successive observations (polls): what an asynchronous counter
    /// reports.
    Snapshots,
    /// Accumulated from events the receiver is told of, one by one: what a synchronous counter
    /// records.
    Events,
}

impl CountSource {
    /// The specification's `lowmemory` preference (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_
    /// PREFERENCE`): delta for synchronous counters, cumulative for asynchronous counters (and
    /// up-down counters, which the table has none of). The one place that rule is written;
    /// `settings::TemporalityPreference` and the generated documentation read it.
    pub fn delta_under_low_memory(self) -> bool {
        match self {
            CountSource::Snapshots => false,
            CountSource::Events => true,
        }
    }

    /// The specification's instrument of the same kind, for the documentation.
    pub(crate) fn instrument(self) -> &'static str {
        match self {
            CountSource::Snapshots => "asynchronous counter",
            CountSource::Events => "synchronous counter",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Int,
    /// Seconds: the programs' CPU time, self-telemetry's poll durations.
    Double,
}

impl ValueType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ValueType::Int => "int",
            ValueType::Double => "double",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct MetricDef {
    pub id: MetricId,
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: MetricKind,
    pub value_type: ValueType,
    /// Point attributes, in the order they are attached. The Datadog-only `supervisord_server`
    /// is not listed: it goes on every point of every metric.
    pub attributes: &'static [&'static AttributeDef],
    pub description: &'static str,
    pub enabled_by_default: bool,
}

/// The `value_type:` of a [`metric_table!`] entry, an int when it has none.
macro_rules! value_type_or_int {
    () => {
        ValueType::Int
    };
    ($value_type:expr) => {
        $value_type
    };
}

/// The `kind:` of a [`metric_table!`] entry, a gauge when it has none.
macro_rules! kind_or_gauge {
    () => {
        MetricKind::Gauge
    };
    ($kind:expr) => {
        $kind
    };
}

/// Declares [`MetricId`] and [`METRICS`] from one list, so the enum's discriminant is always
/// the metric's index in the table. An entry without `kind:` is a gauge, one without
/// `value_type:` an int.
macro_rules! metric_table {
    ($( $(#[$doc:meta])* $id:ident {
        name: $name:literal,
        unit: $unit:literal,
        $(kind: $kind:expr,)?
        $(value_type: $value_type:expr,)?
        attributes: [$($attr:expr),* $(,)?],
        description: $description:expr,
        enabled: $enabled:literal $(,)?
    } ),+ $(,)?) => {
        /// A metric of the table; `id as usize` is its index in [`METRICS`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MetricId {
            $( $(#[$doc])* $id, )+
        }

        impl MetricId {
            pub const ALL: [MetricId; [$(MetricId::$id),+].len()] = [$(MetricId::$id),+];
        }

        /// Every metric, in emission and documentation order.
        pub static METRICS: [MetricDef; MetricId::ALL.len()] = [$(
            MetricDef {
                id: MetricId::$id,
                name: $name,
                unit: $unit,
                kind: kind_or_gauge!($($kind)?),
                value_type: value_type_or_int!($($value_type)?),
                attributes: &[$($attr),*],
                description: $description,
                enabled_by_default: $enabled,
            },
        )+];
    };
}

/// What every per-program resource metric's description ends with: which targets and
/// programs have one.
macro_rules! resources_scope {
    () => {
        " Running programs of local targets only (on this host: a UNIX socket, or TCP to a \
         loopback address; the target's `process_resources` overrides)."
    };
}

metric_table! {
    /// Emitted on every poll, failed or not, so "down" is data rather than an absent series.
    CanConnect {
        name: "supervisord.can_connect",
        unit: "1",
        attributes: [],
        description: "1 when the last poll of supervisord succeeded, 0 when it failed.",
        enabled: true,
    },
    /// All three statuses are always emitted (zeros included), as the Datadog check does.
    ProcessCount {
        name: "supervisord.process.count",
        unit: "{process}",
        attributes: [&STATUS],
        description: "The number of monitored processes per mapped status.",
        enabled: true,
    },
    ProcessUptime {
        name: "supervisord.process.uptime",
        unit: "s",
        attributes: [&PROCESS, &GROUP],
        description: "Seconds since the process started while it is BACKOFF, RUNNING or \
                      STOPPING, otherwise 0. Never negative: when supervisord's clock goes back, \
                      the uptime goes on by the receiver's clock.",
        enabled: true,
    },
    /// One point per status so a status change never leaves a stale series at 1.
    ProcessStatus {
        name: "supervisord.process.status",
        unit: "1",
        attributes: [&PROCESS, &GROUP, &STATUS, &AUTOSTART],
        description: "1 for the process's current mapped status, 0 for the other statuses.",
        enabled: true,
    },
    ProcessState {
        name: "supervisord.process.state",
        unit: "1",
        attributes: [&PROCESS, &GROUP, &PROCESS_STATE, &AUTOSTART],
        description: "1 for the process's current supervisord state, 0 for the other states.",
        enabled: true,
    },
    ProcessExitStatus {
        name: "supervisord.process.exit_status",
        unit: "1",
        attributes: [&PROCESS, &GROUP],
        description: "The exit status of the process's last exit.",
        enabled: true,
    },
    ProcessStartTime {
        name: "supervisord.process.start_time",
        unit: "s",
        attributes: [&PROCESS, &GROUP],
        description: "Unix time the process last started, by supervisord's clock (as its own \
                      log says it; `supervisord.clock.offset` tells how far that clock is off); \
                      absent when it never started.",
        enabled: true,
    },
    // The two counts follow the other per-process metrics, before supervisord's own state.
    /// A count derived by comparing polls (or, in push mode, counted from start events).
    ProcessRestarts {
        name: "supervisord.process.restarts",
        unit: "{restart}",
        kind: MetricKind::Sum {
            monotonic: true,
            source: CountSource::Snapshots,
        },
        attributes: [&PROCESS, &GROUP],
        description: "Every new start of the process after the receiver first saw it: when \
                      polling, a change of start time or pid between two polls (so a crash and \
                      restart between two polls counts); in push mode, each start event.",
        enabled: true,
    },
    /// Counted from the exit events only push mode receives.
    ProcessExits {
        name: "supervisord.process.exits",
        unit: "{exit}",
        kind: MetricKind::Sum {
            monotonic: true,
            source: CountSource::Events,
        },
        attributes: [&PROCESS, &GROUP, &EXPECTED],
        description: "Exits of the process, by whether the exit status was expected; push mode \
                      only (counted from supervisord's exit events), absent when polling, which \
                      cannot tell how many exits happened between two polls.",
        enabled: true,
    },
    // The programs' resources, read from /proc for local targets, after the counts. Names and
    // units follow the OpenTelemetry process semantic conventions, under the `supervisord.`
    // prefix; each reading covers the program's process tree (its process and every descendant).
    /// Read from snapshots of /proc (like an asynchronous counter): cumulative under
    /// `lowmemory`.
    ProcessCpuTime {
        name: "supervisord.process.cpu.time",
        unit: "s",
        kind: MetricKind::Sum {
            monotonic: true,
            source: CountSource::Snapshots,
        },
        value_type: ValueType::Double,
        attributes: [&PROCESS, &GROUP, &CPU_MODE],
        description: concat!(
            "CPU time used by the program's process tree, by mode, children that exited \
             included.",
            resources_scope!()
        ),
        enabled: true,
    },
    ProcessMemoryUsage {
        name: "supervisord.process.memory.usage",
        unit: "By",
        attributes: [&PROCESS, &GROUP],
        description: concat!(
            "Resident memory of the program's process tree; a page shared by several of its \
             processes counts once per process.",
            resources_scope!()
        ),
        enabled: true,
    },
    ProcessMemoryVirtual {
        name: "supervisord.process.memory.virtual",
        unit: "By",
        attributes: [&PROCESS, &GROUP],
        description: concat!(
            "Virtual memory of the program's process tree.",
            resources_scope!()
        ),
        enabled: true,
    },
    ProcessThreadCount {
        name: "supervisord.process.thread.count",
        unit: "{thread}",
        attributes: [&PROCESS, &GROUP],
        description: concat!(
            "Threads of the program's process tree.",
            resources_scope!()
        ),
        enabled: true,
    },
    ProcessOpenFileDescriptors {
        name: "supervisord.process.unix.file_descriptor.count",
        unit: "{file_descriptor}",
        attributes: [&PROCESS, &GROUP],
        description: concat!(
            "Open file descriptors of the program's process tree; absent when one of its \
             processes' could not be read.",
            resources_scope!()
        ),
        enabled: true,
    },
    ProcessTreeCount {
        name: "supervisord.process.tree.count",
        unit: "{process}",
        attributes: [&PROCESS, &GROUP],
        description: concat!(
            "Processes in the program's tree, its own included (a forking server's workers).",
            resources_scope!()
        ),
        enabled: true,
    },
    SupervisorState {
        name: "supervisord.state",
        unit: "1",
        attributes: [&SUPERVISOR_STATE],
        description: "1 for supervisord's current state, 0 for the other states; absent when \
                      unknown.",
        enabled: true,
    },
    /// Measured by the receiver (the Datadog check has no such metric); on in both formats,
    /// as the other metrics the check lacks are.
    ClockOffset {
        name: "supervisord.clock.offset",
        unit: "s",
        attributes: [],
        description: "supervisord's clock minus the receiver's when the reply came, in whole \
                      seconds, exact to ±1 s (supervisord reports whole seconds): positive when \
                      supervisord's clock is ahead. Absent when the reply listed no process \
                      (supervisord's time comes with each process).",
        enabled: true,
    },
}

impl MetricId {
    pub fn def(self) -> &'static MetricDef {
        &METRICS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn from_name(name: &str) -> Option<MetricId> {
        METRICS.iter().find(|m| m.name == name).map(|m| m.id)
    }
}

/// The per-program resource metrics (read from /proc for local targets), in table order.
pub const PROGRAM_RESOURCES: [MetricId; 6] = [
    MetricId::ProcessCpuTime,
    MetricId::ProcessMemoryUsage,
    MetricId::ProcessMemoryVirtual,
    MetricId::ProcessThreadCount,
    MetricId::ProcessOpenFileDescriptors,
    MetricId::ProcessTreeCount,
];

/// Resource attributes, in the order they are attached (user attributes follow them).
pub static RESOURCE_ATTRIBUTES: [&AttributeDef; 3] = [
    &SUPERVISOR_SERVER,
    &SUPERVISORD_IDENTIFICATION,
    &SUPERVISORD_VERSION,
];

/// The instrumentation scope every metric is emitted under.
pub const SCOPE_NAME: &str = "supervisord-receiver";
pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------------
// Self-telemetry: the receiver's own metrics. They are OpenTelemetry instruments, declared from
// the table below by `crate::telemetry::self_metrics` and sent by the OpenTelemetry SDK on an
// OTLP exporter of their own, apart from the targets' data, under their own resource and scope,
// so they can never be mistaken for a target's data.

/// The scope of the receiver's own metrics.
pub const SELF_SCOPE_NAME: &str = "supervisord-receiver/self";

/// The `service.name` of the receiver's own resource.
pub const SELF_SERVICE_NAME: &str = env!("CARGO_PKG_NAME");

pub static SERVICE_NAME: AttributeDef = AttributeDef {
    key: "service.name",
    level: AttributeLevel::Resource,
    values: AttributeValues::Free,
    description: "`supervisord-receiver`.",
};

/// The host name when it can be read: one receiver per host is the deployment model, and a
/// stable id keeps the series continuous across restarts.
pub static SERVICE_INSTANCE_ID: AttributeDef = AttributeDef {
    key: "service.instance.id",
    level: AttributeLevel::Resource,
    values: AttributeValues::Free,
    description: "The host name, or an id generated at start when the host name is unknown.",
};

pub static SERVICE_VERSION: AttributeDef = AttributeDef {
    key: "service.version",
    level: AttributeLevel::Resource,
    values: AttributeValues::Free,
    description: "The receiver's version.",
};

/// A closed, low-cardinality class of failure, never the error text: one series per class.
pub static ERROR_TYPE: AttributeDef = AttributeDef {
    key: "error_type",
    level: AttributeLevel::Point,
    values: AttributeValues::Free,
    description: "Why the poll failed: `connect`, `timeout`, `unauthorized`, `http_status`, \
                  `too_large`, `io`, `tls`, `fault`, `invalid_reply`.",
};

/// The self-telemetry attributes, in documentation order. Not part of [`ATTRIBUTES`]: these
/// keys are not reserved for targets (Datadog's `service` tag becomes `service.name` there).
pub static SELF_ATTRIBUTES: [&AttributeDef; 4] = [
    &SERVICE_NAME,
    &SERVICE_INSTANCE_ID,
    &SERVICE_VERSION,
    &ERROR_TYPE,
];

/// The OpenTelemetry instrument a self-telemetry metric is declared as. The OpenTelemetry SDK
/// exports them with the same temporality preference as the targets' sums, applying the
/// specification's rules per instrument (cumulative by default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SelfInstrument {
    /// A count that only grows: a monotonic sum in OTLP.
    Counter,
    /// A level that goes up and down (a queue's size): a non-monotonic sum in OTLP.
    UpDownCounter,
    /// A distribution in explicit buckets, `boundaries` being their upper bounds (a last bucket
    /// up to +Inf follows).
    Histogram { boundaries: &'static [f64] },
}

impl SelfInstrument {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SelfInstrument::Counter => "counter",
            SelfInstrument::UpDownCounter => "up-down counter",
            SelfInstrument::Histogram { .. } => "histogram",
        }
    }
}

/// Upper bounds, in seconds, of the poll duration buckets: 1, 2.5 and 5 per decade from 1 ms
/// (a supervisord on a UNIX socket answers in about one) to 10 s (the default poll timeout,
/// so a poll cut by it lands in the last finite bucket or just past it). 14 buckets: at two
/// to three buckets per decade a quantile read from them is off by at most a factor 2.5, and
/// the series stays small (16 numbers per target).
pub const POLL_DURATION_BOUNDARIES: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A self-telemetry metric; `id as usize` is its index in [`SELF_METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelfMetricId {
    PollDuration,
    Polls,
    PollErrors,
    QueueBatches,
    QueueBytes,
    QueueCapacityBatches,
    QueueCapacityBytes,
    PointsSent,
    PointsDropped,
    RequestsRetried,
    PollsLate,
}

impl SelfMetricId {
    pub const ALL: [SelfMetricId; 11] = [
        SelfMetricId::PollDuration,
        SelfMetricId::Polls,
        SelfMetricId::PollErrors,
        SelfMetricId::QueueBatches,
        SelfMetricId::QueueBytes,
        SelfMetricId::QueueCapacityBatches,
        SelfMetricId::QueueCapacityBytes,
        SelfMetricId::PointsSent,
        SelfMetricId::PointsDropped,
        SelfMetricId::RequestsRetried,
        SelfMetricId::PollsLate,
    ];

    pub fn def(self) -> &'static SelfMetricDef {
        &SELF_METRICS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }
}

/// One self-telemetry metric: everything its instrument is declared with (name, unit,
/// description, instrument kind and value type) and what its points carry.
#[derive(Debug, PartialEq)]
pub struct SelfMetricDef {
    pub id: SelfMetricId,
    pub name: &'static str,
    pub unit: &'static str,
    pub instrument: SelfInstrument,
    /// `Int` for counters (u64) and up-down counters (i64), `Double` for the histogram (f64).
    pub value_type: ValueType,
    /// Point attributes, in the order they are attached.
    pub attributes: &'static [&'static AttributeDef],
    pub description: &'static str,
}

/// Every self-telemetry metric, in declaration and documentation order. Switched on and off as
/// a whole (`telemetry: { metrics: }`), not one by one.
pub static SELF_METRICS: [SelfMetricDef; SelfMetricId::ALL.len()] = [
    SelfMetricDef {
        id: SelfMetricId::PollDuration,
        name: "supervisord_receiver.poll.duration",
        unit: "s",
        instrument: SelfInstrument::Histogram {
            boundaries: &POLL_DURATION_BOUNDARIES,
        },
        value_type: ValueType::Double,
        attributes: &[&SUPERVISOR_SERVER],
        description: "How long the target's polls took, failed or not.",
    },
    SelfMetricDef {
        id: SelfMetricId::Polls,
        name: "supervisord_receiver.polls",
        unit: "{poll}",
        instrument: SelfInstrument::Counter,
        value_type: ValueType::Int,
        attributes: &[&SUPERVISOR_SERVER],
        description: "Polls of the target, failed or not, since it was configured.",
    },
    SelfMetricDef {
        id: SelfMetricId::PollErrors,
        name: "supervisord_receiver.poll.errors",
        unit: "{poll}",
        instrument: SelfInstrument::Counter,
        value_type: ValueType::Int,
        attributes: &[&SUPERVISOR_SERVER, &ERROR_TYPE],
        description: "Failed polls of the target, by error type; a type appears once it \
                      happened.",
    },
    SelfMetricDef {
        id: SelfMetricId::QueueBatches,
        name: "supervisord_receiver.export.queue.batches",
        unit: "{batch}",
        instrument: SelfInstrument::UpDownCounter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "Batches waiting in the sending queue.",
    },
    SelfMetricDef {
        id: SelfMetricId::QueueBytes,
        name: "supervisord_receiver.export.queue.bytes",
        unit: "By",
        instrument: SelfInstrument::UpDownCounter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "Bytes waiting in the sending queue.",
    },
    SelfMetricDef {
        id: SelfMetricId::QueueCapacityBatches,
        name: "supervisord_receiver.export.queue.capacity.batches",
        unit: "{batch}",
        instrument: SelfInstrument::UpDownCounter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "The sending queue's limit in batches.",
    },
    SelfMetricDef {
        id: SelfMetricId::QueueCapacityBytes,
        name: "supervisord_receiver.export.queue.capacity.bytes",
        unit: "By",
        instrument: SelfInstrument::UpDownCounter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "The sending queue's limit in bytes.",
    },
    SelfMetricDef {
        id: SelfMetricId::PointsSent,
        name: "supervisord_receiver.export.points.sent",
        unit: "{data_point}",
        instrument: SelfInstrument::Counter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "Data points of the targets a backend accepted.",
    },
    SelfMetricDef {
        id: SelfMetricId::PointsDropped,
        name: "supervisord_receiver.export.points.dropped",
        unit: "{data_point}",
        instrument: SelfInstrument::Counter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "Data points of the targets given up on: rejected, retried past their \
                      time limit, or pushed out of a full queue.",
    },
    SelfMetricDef {
        id: SelfMetricId::RequestsRetried,
        name: "supervisord_receiver.export.requests.retried",
        unit: "{request}",
        instrument: SelfInstrument::Counter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "Export attempts that failed with a retryable error and were tried again.",
    },
    SelfMetricDef {
        id: SelfMetricId::PollsLate,
        name: "supervisord_receiver.polls.late",
        unit: "{poll}",
        instrument: SelfInstrument::Counter,
        value_type: ValueType::Int,
        attributes: &[],
        description: "Polls, of every target, that started more than 1 s after their scheduled \
                      time: a receiver that cannot keep up with its targets.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_index_the_table() {
        for (i, id) in MetricId::ALL.into_iter().enumerate() {
            assert_eq!(id as usize, i);
            assert_eq!(METRICS[i].id, id);
            assert_eq!(MetricId::from_name(id.name()), Some(id));
        }
        assert_eq!(MetricId::from_name("supervisord.nope"), None);
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let names: HashSet<_> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), METRICS.len());
        assert!(METRICS.iter().all(|m| m.name.starts_with("supervisord.")));
    }

    #[test]
    fn point_attribute_keys_are_unique_per_metric() {
        for metric in &METRICS {
            let mut keys: HashSet<_> = metric.attributes.iter().map(|a| a.key).collect();
            assert_eq!(keys.len(), metric.attributes.len(), "{}", metric.name);
            assert!(metric
                .attributes
                .iter()
                .all(|a| a.level == AttributeLevel::Point));
            assert!(keys.insert(SUPERVISORD_SERVER.key), "{}", metric.name);
        }
    }

    #[test]
    fn sums_are_monotonic_with_a_source_and_the_rest_are_int_gauges() {
        let mut sums = Vec::new();
        for metric in &METRICS {
            match metric.kind {
                MetricKind::Sum { monotonic, source } => {
                    assert!(monotonic, "{}", metric.name);
                    assert_eq!(metric.kind.count_source(), Some(source));
                    sums.push((metric.id, source, metric.value_type));
                }
                MetricKind::Gauge => {
                    assert_eq!(metric.kind.count_source(), None);
                    assert_eq!(metric.value_type, ValueType::Int, "{}", metric.name);
                }
            }
        }
        assert_eq!(
            sums,
            [
                (
                    MetricId::ProcessRestarts,
                    CountSource::Snapshots,
                    ValueType::Int
                ),
                (MetricId::ProcessExits, CountSource::Events, ValueType::Int),
                (
                    MetricId::ProcessCpuTime,
                    CountSource::Snapshots,
                    ValueType::Double
                ),
            ]
        );
        assert_eq!(
            MetricId::ProcessExits.def().attributes,
            [&PROCESS, &GROUP, &EXPECTED]
        );
        assert_eq!(MetricId::ProcessRestarts.def().unit, "{restart}");
        assert_eq!(MetricId::ProcessExits.def().unit, "{exit}");
    }

    #[test]
    fn attributes_are_listed_once_and_keys_repeat_only_for_state() {
        for (i, a) in ATTRIBUTES.iter().enumerate() {
            for b in &ATTRIBUTES[i + 1..] {
                assert!(!std::ptr::eq(*a, *b), "{} listed twice", a.key);
                if a.key == b.key {
                    assert_eq!(a.key, PROCESS_STATE.key);
                    assert_ne!(a.values, b.values);
                }
            }
        }
        for metric in &METRICS {
            for attribute in metric.attributes {
                assert!(
                    ATTRIBUTES.iter().any(|a| std::ptr::eq(*a, *attribute)),
                    "{}: '{}' is not in ATTRIBUTES",
                    metric.name,
                    attribute.key
                );
            }
        }
        assert_eq!(AttributeValues::Bool.names(), ["true", "false"]);
        assert_eq!(AttributeValues::TrueFalse.names(), ["true", "false"]);
        // The configuration's intent rides on the one-hot series only: a program's value is
        // fixed, so it needs no series of its own.
        let with_autostart: Vec<MetricId> = METRICS
            .iter()
            .filter(|m| m.attributes.contains(&&AUTOSTART))
            .map(|m| m.id)
            .collect();
        assert_eq!(
            with_autostart,
            [MetricId::ProcessStatus, MetricId::ProcessState]
        );
        assert_eq!(AttributeValues::CpuMode.names(), ["user", "system"]);
    }

    #[test]
    fn resources_follow_the_counts_with_semantic_convention_units() {
        let resources = PROGRAM_RESOURCES;
        let first = MetricId::ProcessExits as usize + 1;
        assert_eq!(
            MetricId::ALL[first..first + resources.len()],
            resources,
            "after the counts"
        );
        assert_eq!(
            MetricId::ALL[first + resources.len()],
            MetricId::SupervisorState
        );
        let units: Vec<_> = resources.iter().map(|id| id.def().unit).collect();
        assert_eq!(
            units,
            [
                "s",
                "By",
                "By",
                "{thread}",
                "{file_descriptor}",
                "{process}"
            ]
        );
        for id in resources {
            let def = id.def();
            assert!(def.name.starts_with("supervisord.process."), "{}", def.name);
            assert_eq!(def.attributes[..2], [&PROCESS, &GROUP], "{}", def.name);
            assert!(
                def.description.contains("local targets only"),
                "{}",
                def.name
            );
            assert!(def.description.contains("Running programs"), "{}", def.name);
        }
        assert_eq!(
            MetricId::ProcessCpuTime.def().attributes,
            [&PROCESS, &GROUP, &CPU_MODE]
        );
        assert_eq!(MetricId::ProcessCpuTime.def().value_type, ValueType::Double);
    }

    #[test]
    fn self_ids_index_their_table_and_names_never_collide() {
        for (i, id) in SelfMetricId::ALL.into_iter().enumerate() {
            assert_eq!(id as usize, i);
            assert_eq!(SELF_METRICS[i].id, id);
        }
        let mut names: HashSet<_> = METRICS.iter().map(|m| m.name).collect();
        for metric in &SELF_METRICS {
            assert!(names.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("supervisord_receiver."));
        }
        assert_ne!(SELF_SCOPE_NAME, SCOPE_NAME);
    }

    #[test]
    fn self_instruments_have_their_value_type_and_valid_buckets() {
        for metric in &SELF_METRICS {
            match metric.instrument {
                SelfInstrument::Histogram { boundaries } => {
                    assert_eq!(metric.value_type, ValueType::Double, "{}", metric.name);
                    assert!(!boundaries.is_empty());
                    assert!(
                        boundaries.windows(2).all(|w| w[0] < w[1]),
                        "{}",
                        metric.name
                    );
                    assert!(boundaries.iter().all(|b| b.is_finite() && *b > 0.0));
                }
                SelfInstrument::Counter | SelfInstrument::UpDownCounter => {
                    assert_eq!(metric.value_type, ValueType::Int, "{}", metric.name);
                }
            }
        }
        // A poll of 1 ms and one cut by the default 10 s timeout both land in a finite bucket.
        assert_eq!(POLL_DURATION_BOUNDARIES.first(), Some(&0.001));
        assert_eq!(POLL_DURATION_BOUNDARIES.last(), Some(&10.0));
    }

    #[test]
    fn self_attributes_are_not_reserved_for_targets() {
        for attribute in SELF_ATTRIBUTES {
            assert!(ATTRIBUTES.iter().all(|a| a.key != attribute.key));
        }
    }
}
