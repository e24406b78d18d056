//! `GET /metrics`: every target's latest metrics in the OpenMetrics text format, for a
//! Prometheus that scrapes the receiver without a collector in between.
//!
//! The points are the ones the OTLP exporters send: the pipeline keeps each target's latest
//! `ResourceMetrics` as the protobuf bytes it wrote ([`LatestMetrics`]), and this module decodes
//! them and writes them by the OpenTelemetry specification's "Prometheus and OpenMetrics
//! compatibility" rules (OTLP → Prometheus), as the Collector's `prometheus` exporter with
//! `resource_to_telemetry_conversion` does:
//!
//! - **Names**: characters outside `[a-zA-Z0-9_:]` become `_` (`supervisord.process.uptime` →
//!   `supervisord_process_uptime`), runs of `_` collapse to one; the unit is appended as a word
//!   (`s` → `_seconds`, `By` → `_bytes`, `1` → `_ratio` for gauges), unless the name already
//!   holds it, and written as `# UNIT`; a unit in curly braces (`{process}`) is an annotation
//!   and dropped. `# HELP` is the description.
//! - **Types**: a gauge is a `gauge`; a cumulative monotonic sum is a `counter` (samples
//!   `_total`, and `_created` from the point's start time); a cumulative non-monotonic sum a
//!   `gauge`. Delta sums are left out (the specification's alternative to accumulating them):
//!   with `metrics_temporality: delta`, the counts and CPU time are absent here.
//! - **StateSets**: the one-hot metrics ([`STATE_SETS`]) are OpenMetrics StateSets, the state
//!   in a label named after the family (`supervisord_process_state{supervisord_process_state=
//!   "RUNNING"} 1`), without a unit, as the OpenMetrics specification requires. This is a
//!   Prometheus-native rendering: through the Collector the same points are `_ratio` gauges
//!   with a `state` label (`supervisord_process_state_ratio{state="RUNNING"}`).
//! - **Labels**: the point's attributes, the resource's (`supervisor_server` and the others,
//!   on every series, as `resource_to_telemetry_conversion` puts them; a point attribute of the
//!   same key wins), and the scope as `otel_scope_name` and `otel_scope_version`. Keys are
//!   sanitized like names (a leading digit gets `key_`, a leading `_` gets `key`); values of
//!   keys that become the same label are joined with `;`, in the order of their original keys.
//!   An empty value is no label (OpenMetrics treats the two alike).
//! - **`target_info`**: one sample per target, labelled with its resource attributes only
//!   (the `target` Info family, first).
//! - **No timestamps**: OpenMetrics says points SHOULD NOT carry them, so a sample's time is
//!   the scrape's; the values are those of the target's last poll (at most one collection
//!   interval old), and a target whose poll failed shows `supervisord_can_connect_ratio 0`
//!   and no other series, as over OTLP.
//! - **Families** are written whole (every target's samples of one family together), in the
//!   order they first appear, and the text ends with `# EOF`.
//!
//! Only the supervisord data: the receiver's own metrics (self-telemetry) go over OTLP only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
};
use prost::Message;
use tokio::sync::Semaphore;

use crate::telemetry::LatestMetrics;

/// The OpenMetrics 1.0 text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The one-hot metrics, rendered as StateSets: the metric and the attribute that holds the
/// state. (A unit test holds them to the schema's names; `admin` does not import `schema`.)
pub const STATE_SETS: [(&str, &str); 3] = [
    ("supervisord.process.state", "state"),
    ("supervisord.process.status", "status"),
    ("supervisord.state", "state"),
];

/// [`render_metrics`] on a blocking thread, so a large fleet's page does not hold up the
/// runtime's threads, and one at a time in the process, so clients that ask at once (or give up
/// and ask again) never run several; `None` if the rendering panicked.
pub async fn render_off_thread(latest: Arc<LatestMetrics>) -> Option<String> {
    static RENDERING: Semaphore = Semaphore::const_new(1);
    let permit = RENDERING.acquire().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let _rendering = permit;
        render_metrics(&latest)
    })
    .await
    .ok()
}

/// Every recorded target's latest metrics, as an OpenMetrics exposition.
pub fn render_metrics(latest: &LatestMetrics) -> String {
    let mut exposition = Exposition::default();
    for (_, bytes) in latest.snapshot() {
        // The pipeline wrote these bytes, and they are what the exporters send; a slice that
        // did not decode would leave its target out rather than fail the page.
        let Ok(request) = ExportMetricsServiceRequest::decode(bytes) else {
            continue;
        };
        for resource_metrics in &request.resource_metrics {
            exposition.add_resource(resource_metrics);
        }
    }
    exposition.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    StateSet,
    Info,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::StateSet => "stateset",
            Kind::Info => "info",
        }
    }
}

/// One metric family: its metadata and its samples, already written.
struct Family {
    name: String,
    kind: Kind,
    /// A suffix of `name` (after `_`), or empty.
    unit: String,
    help: String,
    samples: String,
}

impl Family {
    fn new(name: String, kind: Kind, unit: String, help: &str) -> Family {
        Family {
            name,
            kind,
            unit,
            help: help.to_owned(),
            samples: String::new(),
        }
    }

    fn write_metadata(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.name());
        if !self.unit.is_empty() {
            let _ = writeln!(out, "# UNIT {} {}", self.name, self.unit);
        }
        if !self.help.is_empty() {
            out.push_str("# HELP ");
            out.push_str(&self.name);
            out.push(' ');
            escape_into(out, &self.help);
            out.push('\n');
        }
    }
}

/// A label: its Prometheus name, the attribute key it came from, its value.
#[derive(Debug, Clone)]
struct Label {
    name: String,
    key: String,
    value: String,
}

#[derive(Default)]
struct Exposition {
    /// `target_info`: written first.
    target: Option<Family>,
    families: Vec<Family>,
    /// Family name → index in `families`.
    index: HashMap<String, usize>,
}

impl Exposition {
    fn add_resource(&mut self, resource_metrics: &ResourceMetrics) {
        let resource: Vec<Label> = resource_metrics
            .resource
            .as_ref()
            .map(|r| labels_of(&r.attributes))
            .unwrap_or_default();
        let resource_labels = merge(resource.clone());
        if !resource_labels.is_empty() {
            let target = self.target.get_or_insert_with(|| {
                Family::new(
                    "target".into(),
                    Kind::Info,
                    String::new(),
                    "Target metadata",
                )
            });
            write_sample(&mut target.samples, "target_info", &resource_labels, "1");
        }
        for scope_metrics in &resource_metrics.scope_metrics {
            let mut common = resource.clone();
            if let Some(scope) = &scope_metrics.scope {
                for (key, value) in [
                    ("otel_scope_name", &scope.name),
                    ("otel_scope_version", &scope.version),
                ] {
                    common.push(Label {
                        name: key.to_owned(),
                        key: key.to_owned(),
                        value: value.clone(),
                    });
                }
            }
            for metric in &scope_metrics.metrics {
                self.add_metric(metric, &common);
            }
        }
    }

    fn add_metric(&mut self, metric: &Metric, common: &[Label]) {
        let (points, kind) = match &metric.data {
            Some(metric::Data::Gauge(gauge)) => {
                let kind = match state_key(metric) {
                    Some(key) if is_state_set(&gauge.data_points, key) => Kind::StateSet,
                    _ => Kind::Gauge,
                };
                (&gauge.data_points, kind)
            }
            Some(metric::Data::Sum(sum)) => {
                if sum.aggregation_temporality != AggregationTemporality::Cumulative as i32 {
                    return;
                }
                let kind = if sum.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::Gauge
                };
                (&sum.data_points, kind)
            }
            // The supervisord data has gauges and sums only.
            _ => return,
        };
        let (name, unit) = family_name(&metric.name, &metric.unit, kind);
        let at = match self.index.get(&name) {
            Some(&at) => at,
            None => {
                self.families
                    .push(Family::new(name.clone(), kind, unit, &metric.description));
                self.index.insert(name, self.families.len() - 1);
                self.families.len() - 1
            }
        };
        let family = &mut self.families[at];
        // One TYPE per name: a metric that would give a second one is dropped whole.
        if family.kind != kind {
            return;
        }
        let state_key = state_key(metric).filter(|_| kind == Kind::StateSet);
        let (total, created) = (
            format!("{}_total", family.name),
            format!("{}_created", family.name),
        );
        // A StateSet's metric points (their labels but the state) and their states, in the
        // order they first appear.
        let mut state_sets: Vec<(String, Vec<(String, &str)>)> = Vec::new();
        let mut state_set_index: HashMap<String, usize> = HashMap::new();
        for point in points {
            let Some(value) = &point.value else {
                continue;
            };
            let mut labels = point_labels(&point.attributes, state_key);
            // The resource's and the scope's, unless the point has an attribute of that key.
            labels.extend(
                common
                    .iter()
                    .filter(|c| !point.attributes.iter().any(|kv| kv.key == c.key))
                    .cloned(),
            );
            let mut labels = merge(labels);
            match kind {
                Kind::Gauge => {
                    write_sample(&mut family.samples, &family.name, &labels, &number(value));
                }
                Kind::Counter => {
                    write_sample(&mut family.samples, &total, &labels, &number(value));
                    if point.start_time_unix_nano != 0 {
                        let seconds = seconds(point.start_time_unix_nano);
                        write_sample(&mut family.samples, &created, &labels, &seconds);
                    }
                }
                Kind::StateSet => {
                    let state = point
                        .attributes
                        .iter()
                        .find(|kv| Some(kv.key.as_str()) == state_key)
                        .map(|kv| attribute_value(kv.value.as_ref()))
                        .unwrap_or_default();
                    let one = if is_one(value) { "1" } else { "0" };
                    // The family's name is the state's label: no other label may have it.
                    labels.retain(|(name, _)| *name != family.name);
                    // The states of one metric point go together, whatever the points' order.
                    let key = label_text(&labels);
                    match state_set_index.get(&key) {
                        Some(&at) => state_sets[at].1.push((state, one)),
                        None => {
                            state_set_index.insert(key.clone(), state_sets.len());
                            state_sets.push((key, vec![(state, one)]));
                        }
                    }
                }
                Kind::Info => {}
            }
        }
        for (labels, states) in state_sets {
            for (state, one) in states {
                family.samples.push_str(&family.name);
                family.samples.push('{');
                family.samples.push_str(&labels);
                if !labels.is_empty() {
                    family.samples.push(',');
                }
                family.samples.push_str(&family.name);
                family.samples.push_str("=\"");
                escape_into(&mut family.samples, &state);
                family.samples.push_str("\"} ");
                family.samples.push_str(one);
                family.samples.push('\n');
            }
        }
    }

    fn finish(self) -> String {
        let mut out = String::with_capacity(
            self.families
                .iter()
                .chain(&self.target)
                .map(|f| f.samples.len() + 256)
                .sum(),
        );
        for family in self.target.iter().chain(&self.families) {
            family.write_metadata(&mut out);
            out.push_str(&family.samples);
        }
        out.push_str("# EOF\n");
        out
    }
}

/// The attribute holding the state, when `metric` is one of [`STATE_SETS`].
fn state_key(metric: &Metric) -> Option<&'static str> {
    STATE_SETS
        .iter()
        .find(|(name, _)| *name == metric.name)
        .map(|&(_, key)| key)
}

/// Every point has a state and is 0 or 1: what a StateSet is made of. Anything else is written
/// as the gauge it is.
fn is_state_set(points: &[NumberDataPoint], key: &str) -> bool {
    !points.is_empty()
        && points.iter().all(|point| {
            let zero_or_one = match point.value {
                Some(number_data_point::Value::AsInt(v)) => v == 0 || v == 1,
                Some(number_data_point::Value::AsDouble(v)) => v == 0.0 || v == 1.0,
                None => false,
            };
            zero_or_one
                && point
                    .attributes
                    .iter()
                    .any(|kv| kv.key == key && !attribute_value(kv.value.as_ref()).is_empty())
        })
}

fn is_one(value: &number_data_point::Value) -> bool {
    match *value {
        number_data_point::Value::AsInt(v) => v == 1,
        number_data_point::Value::AsDouble(v) => v == 1.0,
    }
}

/// The family name of a metric and its unit word (empty when there is none).
fn family_name(name: &str, unit: &str, kind: Kind) -> (String, String) {
    let mut base = sanitize(name, true);
    if kind == Kind::StateSet {
        // OpenMetrics: a StateSet has no unit.
        return (base, String::new());
    }
    if kind == Kind::Counter {
        // The samples get `_total`; the family is named without it.
        if let Some(stripped) = base.strip_suffix("_total").filter(|s| !s.is_empty()) {
            base = stripped.to_owned();
        }
    }
    let unit = unit_word(unit, kind == Kind::Gauge);
    if unit.is_empty() {
        return (base, unit);
    }
    if !format!("_{base}_").contains(&format!("_{unit}_")) {
        base.push('_');
        base.push_str(&unit);
    }
    // `# UNIT` only when the unit is the name's suffix, as OpenMetrics requires.
    let unit = if base.ends_with(&format!("_{unit}")) {
        unit
    } else {
        String::new()
    };
    (base, unit)
}

/// An OpenTelemetry (UCUM) unit as a Prometheus word: `s` → `seconds`, `By/s` →
/// `bytes_per_second`, `1` → `ratio` (gauges only), annotations in braces dropped.
fn unit_word(unit: &str, gauge: bool) -> String {
    let mut plain = String::with_capacity(unit.len());
    let mut depth = 0usize;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.trim();
    if plain == "1" {
        return if gauge {
            "ratio".to_owned()
        } else {
            String::new()
        };
    }
    let (main, per) = match plain.split_once('/') {
        Some((main, per)) => (main.trim(), Some(per.trim())),
        None => (plain, None),
    };
    let main = if main == "1" { "" } else { main };
    let main = match main {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => other,
    };
    let per = per.map(|per| match per {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    });
    let word = match per.filter(|p| !p.is_empty()) {
        Some(per) if main.is_empty() => format!("per_{per}"),
        Some(per) => format!("{main}_per_{per}"),
        None => main.to_owned(),
    };
    let word = sanitize(&word, false);
    word.trim_matches('_').to_owned()
}

/// Characters outside `[a-zA-Z0-9_]` (and `:` in a metric name) become `_`, runs of `_`
/// collapse; a leading digit gets a `_` before it (metric names) or `key_` (label names).
fn sanitize(name: &str, metric: bool) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        let valid = c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
        let c = if valid { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, if metric { "_" } else { "key_" });
    }
    out
}

/// A label name from an attribute key: sanitized, and never starting with `_` (label names
/// starting with `_` are reserved).
fn label_name(key: &str) -> String {
    let name = sanitize(key, false);
    if name.starts_with('_') {
        format!("key{name}")
    } else {
        name
    }
}

fn labels_of(attributes: &[KeyValue]) -> Vec<Label> {
    attributes
        .iter()
        .map(|kv| Label {
            name: label_name(&kv.key),
            key: kv.key.clone(),
            value: attribute_value(kv.value.as_ref()),
        })
        .collect()
}

/// A point's labels, without the StateSet's state attribute (it gets the family's name).
fn point_labels(attributes: &[KeyValue], state_key: Option<&str>) -> Vec<Label> {
    let mut labels = labels_of(attributes);
    if let Some(state_key) = state_key {
        labels.retain(|label| label.key != state_key);
    }
    labels
}

/// Labels that share a name become one, their values joined with `;` in the order of their
/// keys (attributes given twice keep their order); empty values are dropped. Sorted by name.
fn merge(mut labels: Vec<Label>) -> Vec<(String, String)> {
    labels.retain(|label| !label.value.is_empty() && !label.name.is_empty());
    labels.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.key.cmp(&b.key)));
    let mut out: Vec<(String, String)> = Vec::with_capacity(labels.len());
    for label in labels {
        match out.last_mut() {
            Some((name, value)) if *name == label.name => {
                value.push(';');
                value.push_str(&label.value);
            }
            _ => out.push((label.name, label.value)),
        }
    }
    out
}

/// `a="x",b="y"`, escaped.
fn label_text(labels: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_into(&mut out, value);
        out.push('"');
    }
    out
}

fn write_sample(out: &mut String, name: &str, labels: &[(String, String)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(&label_text(labels));
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// OpenMetrics escaping of label values and HELP text: backslash, double quote, line feed.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// An integer as is; a double with a point or an exponent, `+Inf`, `-Inf`, `NaN`.
fn number(value: &number_data_point::Value) -> String {
    match *value {
        number_data_point::Value::AsInt(v) => v.to_string(),
        number_data_point::Value::AsDouble(v) if v.is_nan() => "NaN".to_owned(),
        number_data_point::Value::AsDouble(v) if v == f64::INFINITY => "+Inf".to_owned(),
        number_data_point::Value::AsDouble(v) if v == f64::NEG_INFINITY => "-Inf".to_owned(),
        // Debug is the shortest text that reads back to the same value, always with a point
        // or an exponent.
        number_data_point::Value::AsDouble(v) => format!("{v:?}"),
    }
}

/// Unix nanoseconds as seconds, every digit kept (no exponent, as OpenMetrics asks of times).
fn seconds(unix_nano: u64) -> String {
    format!(
        "{}.{:09}",
        unix_nano / 1_000_000_000,
        unix_nano % 1_000_000_000
    )
}

/// An attribute value as label text: strings as they are, other scalars as written in the
/// OpenTelemetry attribute specification, arrays and maps as JSON, bytes as base64.
fn attribute_value(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => json_of(other).to_string(),
        None => String::new(),
    }
}

fn json_of(value: &any_value::Value) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::Value as Json;
    let inner = |v: &AnyValue| v.value.as_ref().map_or(Json::Null, json_of);
    match value {
        any_value::Value::StringValue(s) => Json::from(s.as_str()),
        any_value::Value::BoolValue(b) => Json::from(*b),
        any_value::Value::IntValue(i) => Json::from(*i),
        any_value::Value::DoubleValue(d) => Json::from(*d),
        any_value::Value::ArrayValue(array) => array.values.iter().map(inner).collect(),
        any_value::Value::KvlistValue(list) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, inner)))
                .collect(),
        ),
        any_value::Value::BytesValue(bytes) => {
            Json::from(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        _ => Json::Null,
    }
}

#[cfg(test)]
#[path = "openmetrics_tests.rs"]
mod tests;
