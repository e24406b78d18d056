//! `docs/metrics.md`, rendered from the definitions: a test (`tests/unit/metrics_golden.rs`)
//! compares the file with [`metrics_page`], so the manual cannot drift from what is emitted;
//! `UPDATE_DOCS=1 cargo test --test unit metrics_golden` rewrites it.

use std::fmt::Write as _;

use super::definitions::*;

/// The first line of the page: it is generated, and says how.
pub const GENERATED_NOTICE: &str = "<!-- Generated from src/schema/definitions.rs and \
     src/schema/events.rs by \
     `UPDATE_DOCS=1 cargo test --test unit metrics_golden`; do not edit. -->";

/// The whole of `docs/metrics.md`.
pub fn metrics_page() -> String {
    let mut out = String::new();
    out.push_str(GENERATED_NOTICE);
    out.push_str("\n\n# Metrics\n\n");
    out.push_str(INTRO);
    out.push('\n');
    out.push_str(&markdown_table());
    out.push('\n');
    out.push_str(NOTES);
    out.push_str(&resources_note());
    out.push_str(NOTES_END);
    out.push('\n');
    out.push_str(&temporality_section());
    out.push('\n');
    out.push_str(&log_records_section());
    out
}

/// The `## Log records` section: every log event with its severity rule and attributes.
fn log_records_section() -> String {
    use super::events::EVENTS;
    let mut out = String::from(
        "## Log records\n\n\
         State changes are OTLP log records (a second signal, through the same exporters and \
         queues; `logs: { state_changes: false }` turns them off), with the same resource as \
         the target's metrics and scope `supervisord-receiver`. The record's `event_name` says \
         what it is; its time is supervisord's when it says when (a start or stop time), put \
         on the receiver's clock and kept between the poll that found the change and the one \
         before (see [reliability.md](reliability.md#clock-faults)), else the poll's or, in \
         push mode, the event's arrival; its observed time is the receiver's; the body is a sentence for a person, such as \
         `web is EXITED (was RUNNING): exit status 3, unexpected`. With a Datadog-format file \
         the attributes every point carries ride on every record too. See \
         [push-mode.md](push-mode.md).\n\n\
         Program output (a target's `output:`) is sent the same way: one record per line, \
         with the observed time of the poll that read it (supervisord keeps no time per \
         line), no `event_name` (a line is not an event) and no severity. See \
         [program-output.md](program-output.md).\n\n",
    );
    out.push_str("| Event | Severity | Attributes | Description |\n");
    out.push_str("|---|---|---|---|\n");
    let mut attributes: Vec<&AttributeDef> = Vec::new();
    for event in &EVENTS {
        let keys = event
            .attributes
            .iter()
            .map(|a| format!("`{}`", a.key))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            event.name,
            escape_cell(event.severity),
            keys,
            escape_cell(event.description),
        );
        for attribute in event.attributes {
            if !attributes.iter().any(|a| std::ptr::eq(*a, *attribute)) {
                attributes.push(attribute);
            }
        }
    }
    out.push('\n');
    out.push_str("| Record attribute | Values | Description |\n");
    out.push_str("|---|---|---|\n");
    for attribute in attributes {
        let values = attribute
            .values
            .names()
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            attribute.key,
            values,
            escape_cell(attribute.description),
        );
    }
    out
}

const INTRO: &str = "\
One OTLP Resource per target, one scope `supervisord-receiver` (version = the crate's). The
supervisord metrics are gauges, except the counts the receiver keeps itself (restarts, exits)
and the programs' CPU time, which are monotonic sums (see [Temporality](#temporality)); each
can be switched off in the native format (`metrics:`).
The receiver's own metrics (last tables) are OpenTelemetry instruments, sent by the
OpenTelemetry SDK on an exporter of their own under their own resource and scope (see
[operations](operations.md)).
The supervisord metrics are also served as `GET /metrics` on the `health:` port, in Prometheus
naming (`supervisord_process_uptime_seconds`, `supervisord_process_restarts_total` ...), for a
Prometheus without a collector: see
[operations](operations.md#prometheus-without-a-collector).
";

const NOTES: &str = "\
- **Status** is Datadog's mapping of supervisord's state: RUNNING → `up`; STARTING, UNKNOWN →
  `unknown`; STOPPED, BACKOFF, STOPPING, EXITED, FATAL → `down`, changed per target by
  `status_mapping` (native) or `status_mapping_override` (Datadog).
- **Uptime** follows Datadog's rule: `now - start` (supervisord's own clock) when the
  state is BACKOFF, RUNNING or STOPPING, whatever the mapping says; else 0. Except when
  supervisord's clock goes back: where Datadog reports a negative or shrinking uptime, the
  uptime goes on by the receiver's clock ([reliability.md](reliability.md#clock-faults)).
- **Clock offset**: `supervisord.clock.offset` is supervisord's `now` minus the receiver's
  clock when the reply came, whole seconds (±1 s); only from replies that list a process.
  `supervisord.process.start_time` stays on supervisord's clock, as its own log has it.
- **One-hot states**: `supervisord.process.state` and `supervisord.process.status` emit one
  point per possible value, 1 for the current one and 0 for the others, as the OpenTelemetry
  Collector's `systemd.unit.state` does: a state change never leaves a stale series behind,
  and `sum by (state)` counts processes per state.
- **A failed poll** emits only `supervisord.can_connect` = 0 for that target; every other
  target is unaffected.
- **Counts**: `supervisord.process.restarts` has one series per monitored process, counting
  from when the receiver first saw it; `supervisord.process.exits` two (`expected` true and
  false), in push mode only.
";

/// The notes after [`resources_note`].
const NOTES_END: &str = "\
- **Datadog format**: every point also carries `supervisord_server`, the user's `tags` (a key
  given twice, twice) and `service`, because Datadog's OTLP ingest tags metrics with point
  attributes only.
- Nothing that changes every poll (pid, description, timestamps) is an attribute.
";

/// The notes' line on the programs' resources, naming the metrics from the table.
fn resources_note() -> String {
    let names = PROGRAM_RESOURCES
        .iter()
        .map(|id| format!("`{}`", id.name()))
        .collect::<Vec<_>>()
        .join(",\n  ");
    format!(
        "- **Resources**:\n  {names}\n  \
         are read from /proc, for local targets only (on this host: a UNIX socket, or TCP to a\n  \
         loopback address; the native `process_resources` overrides it per target, and a\n  \
         Datadog-format file reads none), and for running programs only. Each covers the\n  \
         program's process tree: its process and every descendant; CPU time includes the\n  \
         descendants that exited (once reaped, the kernel adds their time to their parent's).\n  \
         Memory usage is the resident memory summed over the tree, so a page shared by several\n  \
         of its processes (a forking server's workers) counts once per process. CPU time is\n  \
         delta under `delta`, and cumulative under `lowmemory`, being read from snapshots. The\n  \
         descriptor count is absent when a process's descriptors could not be read.\n",
    )
}

/// The `## Temporality` section: how the sums' temporality is chosen, rendered from the sources
/// of the counts in the table.
fn temporality_section() -> String {
    let sums_of = |delta_under_low_memory: bool| {
        METRICS
            .iter()
            .filter(|m| {
                m.kind
                    .count_source()
                    .is_some_and(|s| s.delta_under_low_memory() == delta_under_low_memory)
            })
            .map(|m| format!("`{}`", m.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("## Temporality\n\n");
    out.push_str(TEMPORALITY_INTRO);
    let _ = writeln!(
        out,
        "- `lowmemory`: delta for the counts accumulated from events, as for the \
         specification's {}s ({}); cumulative for the sums read from snapshots (counts \
         derived by comparing polls, CPU time read from /proc), as for its {}s ({}).",
        CountSource::Events.instrument(),
        sums_of(true),
        CountSource::Snapshots.instrument(),
        sums_of(false)
    );
    out.push('\n');
    out.push_str(TEMPORALITY_NOTES);
    out
}

const TEMPORALITY_INTRO: &str = "\
A cumulative point counts from its `start_time_unix_nano`: when the receiver first saw the
process for the counts, when the program started for CPU time; a delta point counts from where
the previous point of its series ended, so a backend that adds the delta points up gets the
cumulative count back. Sums are cumulative unless the native format's `metrics_temporality`
says otherwise or, when the file does not set it (always in the Datadog format),
`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` does, with the OpenTelemetry
specification's values (in any case):

- `cumulative` (the default): every sum cumulative.
- `delta`: every sum delta.
";

const TEMPORALITY_NOTES: &str = "\
Datadog's OTLP intake takes delta sums only; through the Datadog Agent a cumulative sum loses
its first point (it becomes the base of the next delta), so `delta` suits Datadog. The gauges
have no temporality. The receiver's own metrics follow the same preference, through the
OpenTelemetry SDK's rules for each instrument (see their tables above).
";

/// The metric and attribute tables, rendered from the definitions.
pub fn markdown_table() -> String {
    let mut out = String::new();
    out.push_str("| Metric | Type | Unit | Attributes | Description |\n");
    out.push_str("|---|---|---|---|---|\n");
    for metric in &METRICS {
        let attributes = metric
            .attributes
            .iter()
            .map(|a| format!("`{}`", a.key))
            .collect::<Vec<_>>()
            .join(", ");
        let disabled = if metric.enabled_by_default {
            ""
        } else {
            " Disabled by default."
        };
        let temporality = match metric.kind.count_source() {
            None => "",
            Some(source) if source.delta_under_low_memory() => {
                "; delta with `delta` or `lowmemory`"
            }
            Some(_) => "; delta with `delta`",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| `{}` | {} ({}){} | `{}` | {} | {}{} |",
            metric.name,
            metric.kind.name(),
            metric.value_type.name(),
            temporality,
            metric.unit,
            attributes,
            escape_cell(metric.description),
            disabled,
        );
    }
    out.push('\n');
    out.push_str("| Attribute | On | Values | Description |\n");
    out.push_str("|---|---|---|---|\n");
    for attribute in ATTRIBUTES {
        let values = attribute
            .values
            .names()
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            attribute.key,
            attribute.level.name(),
            values,
            escape_cell(attribute.description),
        );
    }
    self_telemetry_table(&mut out);
    out
}

/// The second part of the tables: the receiver's own metrics.
fn self_telemetry_table(out: &mut String) {
    let _ = write!(
        out,
        "\nThe receiver's own metrics (self-telemetry): resource `{}={}`, scope `{}`; \
         `supervisor_server` is a point attribute here. A counter is exported as a monotonic \
         sum, an up-down counter as a non-monotonic sum. Temporality follows the same \
         preference as the targets' sums ([Temporality](#temporality)), by the SDK's rules: \
         cumulative by default; under `delta` the counters and the histogram are delta and the \
         up-down counters stay cumulative; under `lowmemory` only the histogram (a synchronous \
         instrument) is delta, the counters being asynchronous.\n\n",
        SERVICE_NAME.key, SELF_SERVICE_NAME, SELF_SCOPE_NAME
    );
    out.push_str("| Metric | Instrument | Unit | Attributes | Description |\n");
    out.push_str("|---|---|---|---|---|\n");
    let mut buckets = Vec::new();
    for metric in &SELF_METRICS {
        let attributes = metric
            .attributes
            .iter()
            .map(|a| format!("`{}`", a.key))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| `{}` | {} ({}) | `{}` | {} | {} |",
            metric.name,
            metric.instrument.name(),
            metric.value_type.name(),
            metric.unit,
            attributes,
            escape_cell(metric.description),
        );
        if let SelfInstrument::Histogram { boundaries } = metric.instrument {
            buckets.push((metric, boundaries));
        }
    }
    for (metric, boundaries) in buckets {
        let bounds = boundaries
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            "\n`{}` buckets (upper bounds, `{}`): {bounds}, +Inf.\n",
            metric.name, metric.unit
        );
    }
    out.push('\n');
    out.push_str("| Attribute | On | Description |\n");
    out.push_str("|---|---|---|\n");
    for attribute in SELF_ATTRIBUTES {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            attribute.key,
            attribute.level.name(),
            escape_cell(attribute.description),
        );
    }
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_lists_every_metric_and_attribute() {
        let md = markdown_table();
        for metric in &METRICS {
            assert!(
                md.contains(&format!("| `{}` |", metric.name)),
                "{}",
                metric.name
            );
        }
        for attribute in ATTRIBUTES {
            assert!(md.contains(&format!("| `{}` |", attribute.key)));
        }
        assert!(md.contains("`up`, `down`, `unknown`") || md.contains("`down`, `up`, `unknown`"));
        assert!(
            md.contains("| `expected` | point | `true`, `false` |"),
            "{md}"
        );
    }

    #[test]
    fn sums_show_their_type_and_temporality() {
        let md = markdown_table();
        let row = |id: MetricId| {
            md.lines()
                .find(|l| l.starts_with(&format!("| `{}` |", id.name())))
                .unwrap_or_else(|| panic!("no row for {}", id.name()))
                .to_string()
        };
        assert!(row(MetricId::ProcessUptime).contains("| gauge (int) |"));
        assert!(
            row(MetricId::ProcessRestarts)
                .contains("| monotonic sum (int); delta with `delta` | `{restart}` |"),
            "{}",
            row(MetricId::ProcessRestarts)
        );
        assert!(row(MetricId::ProcessExits).contains(
            "| monotonic sum (int); delta with `delta` or `lowmemory` | `{exit}` | \
             `supervisord_process`, `supervisord_group`, `expected` |"
        ));
        let page = metrics_page();
        let section = &page[page.find("## Temporality").expect("a temporality section")..];
        assert!(section.contains("`metrics_temporality`"));
        assert!(section.contains("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"));
        assert!(section.contains("synchronous counters (`supervisord.process.exits`); cumulative"));
        assert!(section.contains(&format!(
            "asynchronous counters (`{}`, `{}`).",
            MetricId::ProcessRestarts.name(),
            MetricId::ProcessCpuTime.name()
        )));
        assert!(
            row(MetricId::ProcessCpuTime).contains(
                "| monotonic sum (double); delta with `delta` | `s` | \
                 `supervisord_process`, `supervisord_group`, `cpu.mode` |"
            ),
            "{}",
            row(MetricId::ProcessCpuTime)
        );
        assert!(row(MetricId::ProcessMemoryUsage).contains("| gauge (int) | `By` |"));
        assert!(
            md.contains("| `cpu.mode` | point | `user`, `system` |"),
            "{md}"
        );
    }

    #[test]
    fn the_notes_name_every_resource_metric() {
        let page = metrics_page();
        let note = page
            .lines()
            .skip_while(|l| !l.starts_with("- **Resources**"))
            .take_while(|l| !l.starts_with("- **Datadog format**"))
            .collect::<Vec<_>>()
            .join(" ");
        for id in PROGRAM_RESOURCES {
            assert!(note.contains(&format!("`{}`", id.name())), "{note}");
        }
        assert!(!note.contains(&format!("`{}`", MetricId::ProcessUptime.name())));
        assert!(note.contains("cumulative under `lowmemory`"), "{note}");
    }

    #[test]
    fn the_page_lists_every_log_event_and_its_attributes() {
        let page = metrics_page();
        let section = &page[page.find("## Log records").expect("a log records section")..];
        for event in &super::super::events::EVENTS {
            assert!(
                section.contains(&format!("| `{}` |", event.name)),
                "{}",
                event.name
            );
            for attribute in event.attributes {
                assert!(
                    section.contains(&format!("| `{}` |", attribute.key)),
                    "{}",
                    attribute.key
                );
            }
        }
    }

    #[test]
    fn markdown_lists_every_self_metric() {
        let md = markdown_table();
        for metric in &SELF_METRICS {
            assert!(md.contains(&format!("| `{}` |", metric.name)));
        }
        assert!(md.contains("| counter (int) |"));
        assert!(md.contains("| up-down counter (int) |"));
        assert!(md.contains("| histogram (double) |"));
        assert!(md.contains("0.001, 0.0025, 0.005,"), "{md}");
        assert!(md.contains("5, 10, +Inf."), "{md}");
        assert!(md.contains(SELF_SCOPE_NAME));
    }
}
