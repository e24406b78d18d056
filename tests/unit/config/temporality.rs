//! The sums' temporality preference: `metrics_temporality` in the native format, else
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else cumulative; and how a preference
//! maps each count to a temporality.

use supervisord_receiver::schema::definitions::CountSource;
use supervisord_receiver::settings::{Temporality, TemporalityPreference};

use super::*;

const VARIABLE: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";

fn native(value: Option<&str>) -> String {
    match value {
        Some(value) => format!("metrics_temporality: {value}\n{TARGET}"),
        None => TARGET.to_string(),
    }
}

fn preference(text: &str, vars: &[(&str, &str)]) -> TemporalityPreference {
    load_text(text, vars)
        .unwrap_or_else(|e| panic!("{e}"))
        .temporality
}

#[test]
fn cumulative_unless_the_file_or_the_environment_says_otherwise() {
    assert_eq!(
        preference(&native(None), &[]),
        TemporalityPreference::Cumulative
    );
    for (value, expected) in [
        ("cumulative", TemporalityPreference::Cumulative),
        ("delta", TemporalityPreference::Delta),
        ("Delta", TemporalityPreference::Delta),
        ("lowmemory", TemporalityPreference::LowMemory),
        ("LowMemory", TemporalityPreference::LowMemory),
    ] {
        assert_eq!(preference(&native(Some(value)), &[]), expected, "{value}");
        assert_eq!(
            preference(&native(None), &[(VARIABLE, value)]),
            expected,
            "{value}"
        );
    }
    // Spaces around the variable's value are the environment's, and an empty one is unset.
    assert_eq!(
        preference(&native(None), &[(VARIABLE, " delta ")]),
        TemporalityPreference::Delta
    );
    assert_eq!(
        preference(&native(None), &[(VARIABLE, "")]),
        TemporalityPreference::Cumulative
    );
    // A null key is an absent one.
    assert_eq!(
        preference(&native(Some("")), &[(VARIABLE, "delta")]),
        TemporalityPreference::Delta
    );
}

#[test]
fn the_file_wins_over_the_environment_which_is_then_reported_ignored() {
    let s = load_text(&native(Some("cumulative")), &[(VARIABLE, "delta")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.temporality, TemporalityPreference::Cumulative);
    assert_eq!(
        s.warnings,
        [format!(
            "{VARIABLE}: ignored: the file sets metrics_temporality"
        )]
    );
    // Even an invalid variable is only ignored then.
    let s = load_text(&native(Some("delta")), &[(VARIABLE, "sometimes")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.temporality, TemporalityPreference::Delta);
}

#[test]
fn the_environment_applies_with_the_files_exporters_too() {
    let text = format!("{TARGET}exporters:\n  debug:\n");
    let s = load_text(&text, &[(VARIABLE, "delta")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.temporality, TemporalityPreference::Delta);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn invalid_values_name_the_key_or_the_variable_and_the_accepted_values() {
    assert_eq!(
        display(&native(Some("sum")), &[]),
        "c.yaml:1:1: metrics_temporality: invalid temporality 'sum': expected cumulative, \
         delta or lowmemory"
    );
    assert_eq!(
        messages(&native(Some("[delta]"))),
        ["metrics_temporality: expected cumulative, delta or lowmemory, found a list"]
    );
    assert_eq!(
        messages(&native(Some("low_memory"))),
        [
            "metrics_temporality: invalid temporality 'low_memory': expected cumulative, delta or \
          lowmemory"
        ]
    );
    assert_eq!(
        display(&native(None), &[(VARIABLE, "deltas")]),
        format!(
            "c.yaml: {VARIABLE}: invalid temporality 'deltas': expected cumulative, delta or \
             lowmemory"
        )
    );
}

#[test]
fn the_datadog_format_reads_the_environment_only() {
    let text = dd("name: s");
    assert_eq!(preference(&text, &[]), TemporalityPreference::Cumulative);
    assert_eq!(
        preference(&text, &[(VARIABLE, "lowmemory")]),
        TemporalityPreference::LowMemory
    );
    assert_eq!(
        display(&text, &[(VARIABLE, "often")]),
        format!(
            "c.yaml: {VARIABLE}: invalid temporality 'often': expected cumulative, delta or \
             lowmemory"
        )
    );
    assert_eq!(
        messages(&format!("metrics_temporality: delta\n{text}")),
        ["metrics_temporality: 'metrics_temporality' belongs to the native format, but this file \
          has 'instances' or 'init_config' and is read as Datadog's; exporters come from the \
          OTEL_EXPORTER_OTLP_* variables"]
    );
}

#[test]
fn preferences_map_each_count_source_as_the_specification_says() {
    use CountSource::{Events, Snapshots};
    use Temporality::{Cumulative, Delta};
    let expected = [
        (TemporalityPreference::Cumulative, Cumulative, Cumulative),
        (TemporalityPreference::Delta, Delta, Delta),
        (TemporalityPreference::LowMemory, Cumulative, Delta),
    ];
    for (preference, snapshots, events) in expected {
        assert_eq!(
            preference.temporality(Snapshots),
            snapshots,
            "{preference:?}"
        );
        assert_eq!(preference.temporality(Events), events, "{preference:?}");
    }
}

#[test]
fn metrics_get_a_temporality_when_they_are_sums() {
    let low = TemporalityPreference::LowMemory;
    assert_eq!(
        low.for_metric(MetricId::ProcessRestarts),
        Some(Temporality::Cumulative)
    );
    assert_eq!(
        low.for_metric(MetricId::ProcessExits),
        Some(Temporality::Delta)
    );
    for id in MetricId::ALL {
        let is_sum = id.def().kind.count_source().is_some();
        assert_eq!(low.for_metric(id).is_some(), is_sum, "{}", id.name());
    }
}

#[test]
fn the_specification_values_parse_in_any_case_and_nothing_else() {
    for (text, expected) in [
        ("cumulative", TemporalityPreference::Cumulative),
        ("CUMULATIVE", TemporalityPreference::Cumulative),
        ("Delta", TemporalityPreference::Delta),
        ("lowmemory", TemporalityPreference::LowMemory),
        ("LOWMEMORY", TemporalityPreference::LowMemory),
    ] {
        assert_eq!(TemporalityPreference::parse(text), Some(expected), "{text}");
    }
    for text in ["", "low_memory", "low-memory", " delta", "deltas", "sum"] {
        assert_eq!(TemporalityPreference::parse(text), None, "{text:?}");
    }
    for preference in TemporalityPreference::ALL {
        assert_eq!(
            TemporalityPreference::parse(preference.name()),
            Some(preference)
        );
    }
}
