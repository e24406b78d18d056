//! The native `admin:` section: the status API's endpoint, its defaults and every problem it
//! can have, each naming the file, the key and what is wrong.

use supervisord_receiver::settings::{AdminEndpoint, AdminSettings};

use super::*;

fn admin(yaml: &str) -> Option<AdminSettings> {
    ok(&format!("{TARGET}admin: {yaml}\n")).admin
}

fn admin_messages(yaml: &str) -> Vec<String> {
    messages(&format!("{TARGET}admin: {yaml}\n"))
}

#[test]
fn off_unless_configured_and_loopback_8787_by_default() {
    assert_eq!(ok(TARGET).admin, None);
    let defaults = admin("{}").unwrap_or_else(|| panic!("admin: {{}} is on"));
    assert_eq!(
        defaults.endpoint,
        AdminEndpoint::Tcp("127.0.0.1:8787".parse().unwrap_or_else(|e| panic!("{e}")))
    );
    assert_eq!(defaults.unhealthy_after, Duration::from_secs(300));
    let set = admin("{endpoint: 'localhost:9000', unhealthy_after: 30s}")
        .unwrap_or_else(|| panic!("admin"));
    assert_eq!(set.endpoint.display(), "127.0.0.1:9000");
    assert_eq!(set.unhealthy_after, Duration::from_secs(30));
    let v6 = admin("{endpoint: '[::1]:0'}").unwrap_or_else(|| panic!("admin"));
    assert_eq!(v6.endpoint.display(), "[::1]:0");
}

#[test]
fn a_unix_socket_is_owner_only_unless_told() {
    let socket = admin("{endpoint: 'unix:///run/supervisord-receiver/admin.sock'}")
        .unwrap_or_else(|| panic!("admin"));
    assert_eq!(
        socket.endpoint,
        AdminEndpoint::Unix {
            path: "/run/supervisord-receiver/admin.sock".into(),
            mode: 0o600
        }
    );
    assert_eq!(
        socket.endpoint.display(),
        "unix:///run/supervisord-receiver/admin.sock"
    );
    let written = [
        ("'0660'", 0o660),
        ("'600'", 0o600),
        ("'0o640'", 0o640),
        ("0640", 0o640),
    ];
    for (written, mode) in written {
        let s = admin(&format!(
            "{{endpoint: 'unix:///run/a.sock', socket_mode: {written}}}"
        ))
        .unwrap_or_else(|| panic!("admin"));
        assert!(
            matches!(s.endpoint, AdminEndpoint::Unix { mode: m, .. } if m == mode),
            "{written}: {:?}",
            s.endpoint
        );
    }
    let open = ok(&format!(
        "{TARGET}admin: {{endpoint: 'unix:///run/a.sock', socket_mode: '0666'}}\n"
    ));
    assert_eq!(
        open.warnings,
        ["admin.socket_mode at line 4, column 41: mode '0666' lets every user of this host read the \
          status (targets, endpoints, errors); \"0600\" or \"0660\" with a group keeps it to the \
          receiver's users"],
    );
}

#[test]
fn a_non_loopback_address_needs_the_opt_in_as_health_does() {
    assert_eq!(
        admin_messages("{endpoint: '0.0.0.0:8787'}"),
        [
            "admin.endpoint: '0.0.0.0:8787' is not a loopback address; the status API names every \
          target and endpoint, so set allow_non_loopback: true to serve it beyond this host"
        ]
    );
    let open = admin("{endpoint: '0.0.0.0:8787', allow_non_loopback: true}")
        .unwrap_or_else(|| panic!("admin"));
    assert_eq!(open.endpoint.display(), "0.0.0.0:8787");
    // The health section's wording is unchanged by the shared check.
    assert_eq!(
        messages(&format!("{TARGET}health: {{endpoint: '0.0.0.0:1'}}\n")),
        [
            "health.endpoint: '0.0.0.0:1' is not a loopback address; the health status names \
          every target, so set allow_non_loopback: true to serve it beyond this host"
        ]
    );
}

#[test]
fn every_problem_names_the_key_and_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        (
            "{endpoint: 'example.com:8787'}",
            "admin.endpoint: invalid endpoint 'example.com:8787': the host must be an IP \
             address or localhost",
        ),
        (
            "{endpoint: 'http://127.0.0.1:8787'}",
            "admin.endpoint: invalid endpoint 'http://127.0.0.1:8787': expected host:port (e.g. \
             127.0.0.1:8787) or unix:///path/to/admin.sock",
        ),
        (
            "{endpoint: '8787'}",
            "admin.endpoint: invalid endpoint '8787': expected host:port (e.g. 127.0.0.1:8787) \
             or unix:///path/to/admin.sock",
        ),
        (
            "{endpoint: '127.0.0.1:http'}",
            "admin.endpoint: invalid endpoint '127.0.0.1:http': invalid port 'http'",
        ),
        (
            "{endpoint: 'unix://run/a.sock'}",
            "admin.endpoint: invalid endpoint 'unix://run/a.sock': expected unix:// followed by \
             an absolute path, e.g. unix:///run/supervisord-receiver/admin.sock",
        ),
        ("{endpoint: ''}", "admin.endpoint: must not be empty"),
        (
            "{endpoint: '127.0.0.1:8787', socket_mode: '0600'}",
            "admin.socket_mode: applies to unix:// endpoints only",
        ),
        (
            "{endpoint: 'unix:///a.sock', socket_mode: 600}",
            "admin.socket_mode: expected an octal mode in quotes, e.g. \"0600\"; YAML read this \
             one as the number 600",
        ),
        (
            "{endpoint: 'unix:///a.sock', socket_mode: '0800'}",
            "admin.socket_mode: invalid mode '0800': expected an octal mode in quotes, e.g. \
             \"0600\", at most \"0777\"",
        ),
        (
            "{endpoint: 'unix:///a.sock', socket_mode: '4600'}",
            "admin.socket_mode: invalid mode '4600': expected an octal mode in quotes, e.g. \
             \"0600\", at most \"0777\"",
        ),
        (
            "{endpoint: 'unix:///a.sock', socket_mode: '0400'}",
            "admin.socket_mode: mode '0400' takes read or write from the owner, so nobody could \
             connect; the owner needs both (e.g. \"0600\", or \"0660\" for a group)",
        ),
        (
            "{unhealthy_after: 0s}",
            "admin.unhealthy_after: must be greater than 0s",
        ),
        (
            "{endpoint: '127.0.0.1:1', allow_non_loopback: maybe}",
            "admin.allow_non_loopback: expected true or false, found a string 'maybe'",
        ),
        (
            "{endpiont: '127.0.0.1:1'}",
            "admin.endpiont: unknown key 'endpiont'; did you mean 'endpoint'?",
        ),
        ("[]", "admin: expected a mapping, found a list"),
    ];
    for (yaml, expected) in cases {
        assert_eq!(admin_messages(yaml), [*expected], "admin: {yaml}");
    }
    let long = format!("{{endpoint: 'unix:///{}.sock'}}", "a".repeat(120));
    let problems = admin_messages(&long);
    assert!(
        problems.len() == 1
            && problems[0].ends_with(
                "the socket path is 126 bytes long, and a UNIX socket path holds at most 107"
            ),
        "{problems:?}"
    );
}

#[test]
fn errors_name_the_file_line_and_key() {
    let text = format!("{TARGET}admin:\n  endpoint: '10.1.2.3:8787'\n");
    let shown = display(&text, &[]);
    assert!(
        shown.contains("c.yaml:5:3: admin.endpoint: '10.1.2.3:8787' is not a loopback address"),
        "{shown}"
    );
}
