//! Recorded replies and hand-written edge cases: what must take the fast path, what must fall
//! back, and hostile replies that must stay bounded.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/xmlrpc/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The replies recorded from real servers go through the fast path.
#[test]
fn recorded_replies_take_the_fast_path() {
    for name in [
        "multicall_recorded_supervisord_4.3.0.xml",
        "multicall_ok.xml",
    ] {
        let body = fixture(name);
        let fast = fast_multicall_reply(&body);
        assert!(fast.is_some(), "{name} declined");
        assert!(matches!(agrees(&body), Ok(true)), "{name}");
        let Ok(Ok(general)) = general_multicall_reply(&body) else {
            panic!("{name} does not decode");
        };
        assert_eq!(fast, Some(general), "{name}");
    }
    for name in [
        "datadog_server1.xml",
        "datadog_server0_auth.xml",
        "datadog_ruby.xml",
    ] {
        let body = fixture(name);
        assert!(fast_processes_reply(&body).is_some(), "{name} declined");
        assert!(matches!(agrees(&body), Ok(true)), "{name}");
    }
}

/// Line ends in text are normalised as quick-xml does: `\r\n` and `\r` become `\n`, a `\r`
/// written as a reference stays.
#[test]
fn line_ends_are_normalised_on_the_fast_path() {
    let body = recorded_with("<string>bad</string>", "<string>b\r\na\rd&#13;\r</string>");
    let Some(fast) = fast_multicall_reply(&body) else {
        panic!("declined");
    };
    assert!(matches!(agrees(&body), Ok(true)));
    let names: Vec<&str> = fast
        .snapshot
        .processes
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["b\na\nd\r\n", "off", "web"]);
}

/// `decode_multicall_reply`'s result, made comparable (errors have no `PartialEq`).
fn multicall_outcome(body: &[u8]) -> String {
    format!("{:?}", decode_multicall_reply(body))
}

fn general_outcome(body: &[u8]) -> String {
    format!("{:?}", general_multicall_reply(body))
}

/// The recorded reply with `from` replaced by `to` (the first occurrence).
fn recorded_with(from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("multicall_recorded_supervisord_4.3.0.xml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

/// Each of these falls back, and then decodes (or fails) exactly as the general decoder
/// alone decodes it: with its result, its problems and its error message.
#[test]
fn what_the_fast_path_does_not_know_falls_back() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("comment", recorded_with("<member>", "<!-- c --><member>")),
        ("cdata", recorded_with("<string>bad</string>", "<string><![CDATA[bad]]></string>")),
        ("processing instruction", recorded_with("<member>", "<?pi?><member>")),
        ("doctype", recorded_with("<methodResponse>", "<!DOCTYPE x><methodResponse>")),
        ("attribute", recorded_with("<value><string>bad", "<value a='1'><string>bad")),
        ("space in a tag", recorded_with("<struct>", "<struct >")),
        ("form feed between tags", recorded_with("<member>", "\x0c<member>")),
        ("form feed around an int", recorded_with("<int>0</int>", "<int>0\x0c</int>")),
        ("unknown entity", recorded_with("<string>bad", "<string>&bad;")),
        ("uppercase hex reference", recorded_with("<string>bad", "<string>&#X41;")),
        ("NUL reference", recorded_with("<string>bad", "<string>&#0;")),
        ("bare ampersand", recorded_with("<string>bad", "<string>& bad")),
                ("double", recorded_with("<int>0</int>", "<double>0.5</double>")),
        ("nil", recorded_with("<value><int>0</int>", "<value><nil/>")),
        ("nested struct", recorded_with("<int>0</int>", "<struct></struct>")),
        ("empty struct element", recorded_with("<value><int>0</int>", "<value><struct/>")),
        ("ex:i8", recorded_with("<int>0</int>", "<ex:i8>0</ex:i8>")),
        ("bad int", recorded_with("<int>0</int>", "<int>0x</int>")),
        ("overflowing int", recorded_with("<int>0</int>", "<int>9223372036854775808</int>")),
        ("mismatched end tag", recorded_with("<int>0</int>", "<int>0</i4>")),
        ("bad boolean", recorded_with("<int>0</int>", "<boolean>2</boolean>")),
        ("text beside a type", recorded_with("<value><int>0</int>", "<value>x<int>0</int>")),
        ("encoding", recorded_with("<?xml version='1.0'?>", "<?xml version='1.0' encoding='latin-1'?>")),
        ("trailing comment", recorded_with("</methodResponse>\n", "</methodResponse>\n<!-- c -->")),
        ("trailing text", recorded_with("</methodResponse>\n", "</methodResponse>\nx")),
        ("invalid UTF-8", {
            let mut body = recorded_with("<string>bad", "<string>b\u{e9}d");
            if let Some(at) = body.windows(2).position(|w| w == "\u{e9}".as_bytes()) {
                body.splice(at..at + 2, [0xE9]);
            }
            body
        }),
        ("truncated", {
            let mut body = fixture("multicall_recorded_supervisord_4.3.0.xml");
            body.truncate(body.len() / 2);
            body
        }),
        ("html", b"<!DOCTYPE html><html><body>Supervisor</body></html>".to_vec()),
        ("empty", Vec::new()),
        ("entry that is not a struct", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><array><data>\n<value><string>x</string></value>\n",
        )),
        ("wrapper holding two arrays", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><array><data>\n<value><array><data>\n</data></array></value>\n\
             <value><array><data>\n</data></array></value>\n</data></array></value>\n<value><array><data>\n",
        )),
        ("no results", b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
            <value><array><data>\n</data></array></value>\n</param>\n</params>\n</methodResponse>\n".to_vec()),
        ("multicall fault", fixture("fault_unknown_method.xml")),
        ("getAllProcessInfo fault", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><struct>\n<member>\n<name>faultCode</name>\n\
             <value><int>2</int></value>\n</member>\n<member>\n<name>faultString</name>\n\
             <value><string>FAILED</string></value>\n</member>\n</struct></value>\n<value><array><data>\n",
        )),
        ("getAllProcessInfo not an array", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><string>x</string></value>\n<value><array><data>\n",
        )),
    ];
    for (what, body) in &cases {
        assert_eq!(
            fast_multicall_reply(body),
            None,
            "{what}: the fast path accepted it"
        );
        assert_eq!(multicall_outcome(body), general_outcome(body), "{what}");
    }
    // Some of these the general decoder reads, some it refuses: both kinds are covered.
    let read = cases
        .iter()
        .filter(|(_, body)| matches!(general_multicall_reply(body), Ok(Ok(_))))
        .count();
    assert!(
        read >= 5 && read + 5 <= cases.len(),
        "{read} of {}",
        cases.len()
    );
}

/// Past [`MAX_PROCESSES`] entries the general decoder reports the ignored ones; the fast path
/// leaves that to it.
#[test]
fn more_processes_than_the_cap_fall_back() {
    let entry = "<value><struct>\n<member>\n<name>name</name>\n<value><string>p</string></value>\n\
                 </member>\n</struct></value>\n";
    let reply = |count: usize| {
        format!(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n{}\
             </data></array></value>\n</param>\n</params>\n</methodResponse>\n",
            entry.repeat(count)
        )
        .into_bytes()
    };
    let at_cap = reply(MAX_PROCESSES);
    assert!(fast_processes_reply(&at_cap).is_some());
    let over = reply(MAX_PROCESSES + 1);
    assert_eq!(fast_processes_reply(&over), None);
    let Ok(Ok((processes, problems))) = decode_processes_reply(&over) else {
        panic!("the reply decodes");
    };
    assert_eq!(processes.len(), MAX_PROCESSES);
    assert_eq!(
        problems.last().map(String::as_str),
        Some("1 processes past the first 10000 ignored")
    );
}

/// Entries the model skips or reports are the shared builder's business: the fast path
/// reads them, with the same problems.
#[test]
fn problem_entries_stay_on_the_fast_path_with_the_same_problems() {
    let long = "n".repeat(MAX_NAME_BYTES + 1);
    let body = recorded_with("<string>bad</string>", &format!("<string>{long}</string>"));
    let body = String::from_utf8(body).unwrap_or_default();
    // The first two are 'bad' (skipped for its name) and 'off'.
    let body = body
        .replacen("<name>pid</name>", "<name>unknown</name>", 2)
        .replacen("<string>STOPPED</string>", "<boolean>1</boolean>", 1)
        .into_bytes();
    let Some(fast) = fast_multicall_reply(&body) else {
        panic!("declined");
    };
    assert!(matches!(agrees(&body), Ok(true)));
    assert_eq!(
        fast.problems,
        [
            format!(
                "process #1: name '{}...' longer than {MAX_NAME_BYTES} bytes, skipped",
                "n".repeat(100)
            ),
            "process 'off': field 'statename' is not a string".to_owned(),
            "process 'off': field 'pid' is missing".to_owned(),
        ]
    );
}

/// Hostile replies the fast path meets before the general decoder: each is one forward pass,
/// then at most one general one (run here, so a quadratic or unbounded path would show as a
/// test that does not end).
#[test]
fn hostile_replies_are_bounded() {
    let head = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n";
    let bodies = [
        format!("{head}{}", "<value><struct>\n".repeat(200_000)),
        format!(
            "{head}<value><struct>{}",
            "<member><name>x</name><value><int>1</int></value></member>".repeat(100_000)
        ),
        format!("{head}<value><string>{}", "&amp;".repeat(1_000_000)),
        format!("{head}<value><string>{}", "&".repeat(1_000_000)),
        format!(
            "{head}<value><string>{}</string></value>",
            "x".repeat(8_000_000)
        ),
        format!("{head}{}", "<value><array><data>\n".repeat(100_000)),
        format!(
            "{head}<value><struct><member><name>{}",
            "n".repeat(4_000_000)
        ),
    ];
    for body in &bodies {
        assert!(matches!(agrees(body.as_bytes()), Ok(false)));
        assert!(decode_multicall_reply(body.as_bytes()).is_err());
        assert!(decode_processes_reply(body.as_bytes()).is_err());
        checks::fast_path_agrees(body.as_bytes());
    }
}
