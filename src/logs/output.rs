//! Program output → OTLP log records: one record per line, with the program's name, group and
//! stream; one per skip, saying how many bytes were passed over.

use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};

use super::{int, record, string};
use crate::schema::definitions::{GROUP, PROCESS};
use crate::schema::events::{EventId, CUT_BYTES, LOG_IOSTREAM, SKIPPED_BYTES};
use crate::scrape::output::stream::Piece;
use crate::scrape::output::OutputRecord;

/// The records of one poll's output, in the order read. A line has no time of its own
/// (supervisord keeps none): only the observed time, when the poll read it.
pub fn output_records(output: &[OutputRecord], observed: u64) -> Vec<LogRecord> {
    output
        .iter()
        .map(|line| output_record(line, observed))
        .collect()
}

fn output_record(line: &OutputRecord, observed: u64) -> LogRecord {
    let mut attributes = Vec::with_capacity(4);
    if let Some(stream) = line.stream {
        attributes.push(string(PROCESS.key, &line.name));
        attributes.push(string(GROUP.key, &line.group));
        attributes.push(string(LOG_IOSTREAM.key, stream.name()));
    }
    match &line.piece {
        Piece::Line { text, cut_bytes } => {
            if *cut_bytes > 0 {
                attributes.push(int(CUT_BYTES.key, saturating_i64(*cut_bytes)));
            }
            let event = if line.stream.is_some() {
                EventId::ProcessOutput
            } else {
                EventId::SupervisorLog
            };
            record(
                event,
                SeverityNumber::Unspecified,
                text.clone(),
                attributes,
                None,
                observed,
            )
        }
        Piece::Skipped { bytes } => {
            attributes.push(int(SKIPPED_BYTES.key, saturating_i64(*bytes)));
            let whose = match line.stream {
                Some(stream) => format!("{} of {}", stream.name(), who(line)),
                None => "supervisord's log".to_owned(),
            };
            record(
                EventId::ProcessOutputSkipped,
                SeverityNumber::Warn,
                format!(
                    "{bytes} bytes of {whose} were skipped: written faster than they are read \
                     (max_backlog_bytes)"
                ),
                attributes,
                None,
                observed,
            )
        }
    }
}

fn who(line: &OutputRecord) -> String {
    if line.group == line.name {
        line.name.clone()
    } else {
        format!("{}:{}", line.group, line.name)
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::OutputStream;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a Value> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn a_line_is_a_record_without_event_name_or_severity() {
        let line = OutputRecord {
            name: "web_0".into(),
            group: "web".into(),
            stream: Some(OutputStream::Stderr),
            piece: Piece::Line {
                text: "boom".into(),
                cut_bytes: 7,
            },
        };
        let records = output_records(&[line], 42);
        let record = &records[0];
        assert_eq!(record.event_name, "");
        assert_eq!(record.severity_number, 0);
        assert_eq!(record.severity_text, "");
        assert_eq!(
            (record.time_unix_nano, record.observed_time_unix_nano),
            (0, 42)
        );
        assert_eq!(
            attribute(record, "log.iostream"),
            Some(&Value::StringValue("stderr".into()))
        );
        assert_eq!(attribute(record, "cut_bytes"), Some(&Value::IntValue(7)));
        assert_eq!(
            attribute(record, "supervisord_group"),
            Some(&Value::StringValue("web".into()))
        );
    }

    #[test]
    fn a_skip_is_a_warning_event_with_its_count() {
        let skip = OutputRecord {
            name: "worker".into(),
            group: "worker".into(),
            stream: Some(OutputStream::Stdout),
            piece: Piece::Skipped { bytes: 4096 },
        };
        let record = &output_records(&[skip], 1)[0];
        assert_eq!(record.event_name, "supervisord.process.output.skipped");
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(
            attribute(record, "skipped_bytes"),
            Some(&Value::IntValue(4096))
        );
        let body = format!("{:?}", record.body);
        assert!(body.contains("4096 bytes of stdout of worker"), "{body}");
    }

    #[test]
    fn supervisords_own_lines_carry_no_program() {
        let line = OutputRecord {
            name: String::new(),
            group: String::new(),
            stream: None,
            piece: Piece::Line {
                text: "2026-12-07 INFO spawned".into(),
                cut_bytes: 0,
            },
        };
        let record = &output_records(&[line], 1)[0];
        assert!(record.attributes.is_empty());
    }
}
