//! Positions in errors, secrets kept out of them, and odd documents.

use super::*;

#[test]
fn a_type_error_has_its_line_and_column() {
    let text = "targets:\n  - name: a\n    endpoint: http://h\n    include:\n      names: nginx\n";
    let p = problems(text, &[]);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key_path, "targets[0].include.names");
    assert_eq!(p[0].line_col, Some((5, 7)));
    assert_eq!(
        p[0].message,
        "expected a list of strings, found a string 'nginx'"
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let p = problems("targets:\n  - name: [a\n", &[]);
    assert_eq!(p.len(), 1);
    assert!(p[0].line_col.is_some(), "{p:?}");
    assert!(p[0].message.starts_with("invalid YAML: "), "{p:?}");
    assert!(!p[0].message.contains(" at line "), "{p:?}");
}

#[test]
fn secrets_never_appear_in_errors() {
    let secret = "hunter2-XYZ";
    let cases = [
        // A password in the wrong type, or in an invalid spot.
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: [{secret}]\n"),
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: {{a: {secret}}}\n"),
        format!("targets:\n  - name: a\n    endpoint: http://u:{secret}@h:9001\n    username: u\n    password: {secret}\n"),
        format!("targets:\n  - name: a\n    endpoint: ftp://u:{secret}@h\n"),
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: 'a${{{secret}}}'\n    username: u\n"),
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: 'a${{env:{secret}-}}'\n    username: u\n"),
        format!("{TARGET}exporters:\n  otlp:\n    endpoint: http://c\n    headers: {{k: [{secret}]}}\n"),
        format!("{TARGET}exporters:\n  otlp:\n    endpoint: http://c\n    headers: {{k: \"{secret}\\n\"}}\n"),
        format!("{TARGET}exporters:\n  otlp:\n    endpoint: http://c\n    headers: {{k: '${{x{secret}}}'}}\n"),
        "targets:\n  - name: a\n    endpoint: http://h\n    password: 98765432109876543210987\n".to_string(),
        dd(&format!("name: s\npass: [{secret}]\n")),
        dd(&format!("name: s\npassword: {{a: {secret}}}\n")),
        dd(&format!("name: s\npassword: 'a${{{secret}}}'\n")),
    ];
    for text in &cases {
        let shown = display(text, &[]);
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("98765432109876543210987"), "{shown}");
        assert!(!format!("{:?}", load_text(text, &[])).contains(secret));
    }
    let shown = display(
        TARGET,
        &[("OTEL_EXPORTER_OTLP_HEADERS", &format!("a={secret},oops"))],
    );
    assert!(!shown.contains(secret), "{shown}");
    // Loaded secrets do not print either.
    let s = load_text(
        "targets:\n  - name: a\n    endpoint: http://h\n    username: u\n    password: ${env:PW}\n",
        &[("PW", secret)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{s:?}").contains(secret));
}

#[test]
fn odd_documents_are_problems_not_panics() {
    let huge = format!(
        "targets:\n  - name: a\n    endpoint: http://h:{}\n",
        "9".repeat(400)
    );
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"   \n# only a comment\n".to_vec(),
        b"- a\n- b\n".to_vec(),
        b"just a scalar".to_vec(),
        b"42".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x01, 0x80],
        b"\x00\x01\x02garbage".to_vec(),
        b"targets: 5\n".to_vec(),
        b"targets: [5, null, [], {}]\n".to_vec(),
        b"targets:\n  - name: {a: b}\n    endpoint: [x]\n    username: 1\n    password: 2\n    collection_interval: [1]\n    timeout: {a: 1}\n    tls: 5\n    include: [x]\n    exclude: {names: 5, regex: [1], groups: [[]]}\n    status_mapping: [1]\n    resource_attributes: 5\n".to_vec(),
        b"collection_interval: -5s\ninitial_delay: 99999999999999999999h\ntimeout: 0s\ntargets: [{name: a, endpoint: 'http://h'}]\n".to_vec(),
        b"targets: [{name: a, endpoint: 'http://h'}]\nmetrics: [1]\nexporters: [1]\n".to_vec(),
        b"targets: [{name: a, endpoint: 'http://h'}]\nmetrics: {supervisord.state: 5}\nexporters: {otlp: 5, debug: {verbosity: 5}, otlp/: {}}\n".to_vec(),
        b"instances: 5\n".to_vec(),
        b"init_config: 5\ninstances: [5, null, {name: 5, port: 99999999, socket: 5, tags: 5, min_collection_interval: .nan, status_mapping_override: {1: [2]}, metric_patterns: 5}]\n".to_vec(),
        b"instances: [{name: a, port: -1, min_collection_interval: 1e400, tags: [1, ':x'], host: 'a b'}]\n".to_vec(),
        b"{1: 2, [a]: b}\n".to_vec(),
        b"a: &x [*x]\n".to_vec(),
        b"!tag {targets: 1}\n".to_vec(),
        b"---\na: 1\n---\nb: 2\n".to_vec(),
        huge.into_bytes(),
        deep.into_bytes(),
    ];
    for input in inputs {
        let result = load_bytes(Path::new("c.yaml"), &input, &env_of(&[]));
        match result {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert!(!problems.is_empty());
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&input)),
        }
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let err = load_with_env(Path::new("/nonexistent/receiver.yaml"), &env_of(&[]))
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err
        .to_string()
        .starts_with("/nonexistent/receiver.yaml: cannot read: "));
}
