//! Tests of the codec: decoding (scalars, structs, arrays, text, faults, everything hostile or
//! malformed), encoding and round trips, `system.multicall`, and log-safe server text.

use super::encode::escape_into;
use super::error::MESSAGE_LIMIT;
use super::parse::QUOTE_LIMIT;
use super::*;

fn response(value_xml: &str) -> String {
    format!(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n{value_xml}\n</param>\n</params>\n</methodResponse>\n"
    )
}

fn decode_value(value_xml: &str) -> Result<Value, DecodeError> {
    match decode_response(response(value_xml).as_bytes())? {
        Ok(value) => Ok(value),
        Err(fault) => panic!("unexpected fault {fault}"),
    }
}

/// The public encoder's output as text.
fn encode_response(value: &Value) -> String {
    String::from_utf8(super::encode_response(value)).unwrap()
}

#[test]
fn scalar_types() {
    let cases: Vec<(&str, Value)> = vec![
        ("<value><int>42</int></value>", Value::Int(42)),
        ("<value><i4>-7</i4></value>", Value::Int(-7)),
        (
            "<value><i8>9007199254740993</i8></value>",
            Value::Int(9_007_199_254_740_993),
        ),
        ("<value><int> +5 </int></value>", Value::Int(5)),
        ("<value><boolean>1</boolean></value>", Value::Bool(true)),
        ("<value><boolean>0</boolean></value>", Value::Bool(false)),
        (
            "<value><string>mysql</string></value>",
            Value::String("mysql".into()),
        ),
        ("<value><string/></value>", Value::String(String::new())),
        (
            "<value><string></string></value>",
            Value::String(String::new()),
        ),
        (
            "<value>bare text</value>",
            Value::String("bare text".into()),
        ),
        ("<value>  </value>", Value::String("  ".into())),
        ("<value></value>", Value::String(String::new())),
        ("<value/>", Value::String(String::new())),
        ("<value><double>-1.5</double></value>", Value::Double(-1.5)),
        (
            "<value><dateTime.iso8601>20141101T04:18:33</dateTime.iso8601></value>",
            Value::DateTime("20141101T04:18:33".into()),
        ),
        (
            "<value><base64>aGVs\nbG8=</base64></value>",
            Value::Base64(b"hello".to_vec()),
        ),
        ("<value><nil/></value>", Value::Nil),
        ("<value><ex:nil/></value>", Value::Nil),
        ("<value>\n  <int>3</int>\n</value>", Value::Int(3)),
    ];
    for (xml, expected) in cases {
        assert_eq!(decode_value(xml), Ok(expected), "{xml}");
    }
}

#[test]
fn struct_keeps_member_order_and_get_finds_last_duplicate() {
    let value = decode_value(
        "<value><struct>\n<member>\n<name>b</name>\n<value><int>1</int></value>\n</member>\n\
         <member><name>a</name><value><string>x</string></value></member>\n\
         <member><name>b</name><value><int>2</int></value></member>\n</struct></value>",
    )
    .unwrap();
    let members = value.as_struct().unwrap();
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["b", "a", "b"]);
    assert_eq!(value.get("b").and_then(Value::as_i64), Some(2));
    assert_eq!(value.get("a").and_then(Value::as_str), Some("x"));
    assert_eq!(value.get("missing"), None);
    assert_eq!(Value::Int(1).get("a"), None);
}

#[test]
fn arrays_nested_and_empty() {
    let value = decode_value(
        "<value><array><data>\n<value><array><data>\n<value><int>1</int></value>\n</data></array></value>\n\
         <value><array><data/></array></value>\n<value><struct>\n</struct></value>\n</data></array></value>",
    )
    .unwrap();
    assert_eq!(
        value,
        Value::Array(vec![
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![]),
            Value::Struct(vec![]),
        ])
    );
    assert_eq!(value.as_array().map(<[Value]>::len), Some(3));
}

#[test]
fn text_entities_cdata_and_comments() {
    assert_eq!(
        decode_value(
            "<value><string>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#xE9;</string></value>"
        ),
        Ok(Value::String("a & b <c> \"d\" 'e' éé".into()))
    );
    assert_eq!(
        decode_value("<value><string>x<![CDATA[<raw>&]]><!-- note -->y</string></value>"),
        Ok(Value::String("x<raw>&y".into()))
    );
    assert_eq!(
        decode_value("<value><string>line1\r\nline2&#13;</string></value>"),
        Ok(Value::String("line1\nline2\r".into()))
    );
}

#[test]
fn fault_reply() {
    let body = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
                <member>\n<name>faultCode</name>\n<value><int>10</int></value>\n</member>\n\
                <member>\n<name>faultString</name>\n<value><string>BAD_NAME</string></value>\n</member>\n\
                </struct></value>\n</fault>\n</methodResponse>\n";
    let fault = decode_response(body.as_bytes()).unwrap().unwrap_err();
    assert_eq!(
        fault,
        Fault {
            code: 10,
            message: "BAD_NAME".into()
        }
    );
    assert_eq!(fault.to_string(), "10 BAD_NAME");
}

#[test]
fn fault_without_fields_is_an_error() {
    let body = "<methodResponse><fault><value><struct><member><name>faultCode</name>\
                <value><string>x</string></value></member></struct></value></fault></methodResponse>";
    assert_eq!(decode_response(body.as_bytes()), Err(DecodeError::BadFault));
}

#[test]
fn round_trip_of_every_type_with_escaping() {
    let value = Value::Struct(vec![
        (
            "tricky <&> name".into(),
            Value::String("a<b>&c \"q\" 'a' ]]> \r\n\t é 🦀".into()),
        ),
        ("int".into(), Value::Int(-3)),
        ("big".into(), Value::Int(i64::MAX)),
        ("bool".into(), Value::Bool(true)),
        ("double".into(), Value::Double(1e300)),
        ("small".into(), Value::Double(-0.000125)),
        ("date".into(), Value::DateTime("20240101T00:00:00".into())),
        ("bytes".into(), Value::Base64(vec![0, 1, 2, 255])),
        (
            "array".into(),
            Value::Array(vec![Value::Nil, Value::String(String::new())]),
        ),
    ]);
    let decoded = decode_response(encode_response(&value).as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(decoded, value);
}

#[test]
fn fault_replies_round_trip() {
    let fault = Fault {
        code: 10,
        message: "BAD_NAME: <x> & y".into(),
    };
    assert_eq!(decode_response(&encode_fault(&fault)), Ok(Err(fault)));
}

#[test]
fn server_text_is_made_printable() {
    assert_eq!(printable("plain text", 40), "plain text");
    assert_eq!(
        printable("a\nWARN forged\r\u{1b}[31m\u{202E}", 40),
        "a\\nWARN forged\\r\\u{1b}[31m\\u{202e}"
    );
    assert_eq!(printable("é🦀xyz", 2), "é🦀...");
    assert_eq!(printable("", 0), "");
    let fault = Fault {
        code: 2,
        message: format!("one\ntwo{}", "z".repeat(1000)),
    };
    let shown = fault.to_string();
    assert!(
        shown.starts_with("2 one\\ntwozzz") && shown.ends_with("..."),
        "{shown}"
    );
    assert_eq!(
        shown.chars().count(),
        "2 ".len() + MESSAGE_LIMIT + 1 + "...".len()
    );
}

#[test]
fn hostile_names_in_errors_are_cut_and_escaped() {
    let long = "t".repeat(100_000);
    let Err(DecodeError::Unexpected { found, .. }) =
        decode_response(format!("<{long}/>").as_bytes())
    else {
        panic!("expected an unexpected-element error");
    };
    assert_eq!(found, format!("<{}.../>", "t".repeat(QUOTE_LIMIT)));
    let Err(DecodeError::Xml { reason, .. }) = decode_response(
        format!("<methodResponse><params><param><value><int>1</{long}>").as_bytes(),
    ) else {
        panic!("expected an XML error");
    };
    assert!(reason.chars().count() <= MESSAGE_LIMIT + 3, "{reason}");
}

#[test]
fn unrepresentable_characters_are_replaced() {
    let mut out = String::new();
    escape_into(&mut out, "a\u{1}b\u{FFFF}c");
    assert_eq!(out, "a\u{FFFD}b\u{FFFD}c");
}

#[test]
fn encode_call_is_well_formed() {
    let body = encode_call(
        "supervisor.getProcessInfo",
        &[Value::String("web&<1>".into())],
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getProcessInfo</methodName>\
         <params><param><value><string>web&amp;&lt;1&gt;</string></value></param></params></methodCall>\n"
    );
    let body = encode_call("supervisor.getState", &[]);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getState</methodName>\
         <params></params></methodCall>\n"
    );
}

#[test]
fn encode_multicall_shape() {
    let body = encode_multicall(&[
        ("supervisor.getState", &[]),
        ("supervisor.getProcessInfo", &[Value::String("a".into())]),
    ]);
    let expected = "<?xml version=\"1.0\"?>\n<methodCall><methodName>system.multicall</methodName><params>\
        <param><value><array><data>\
        <value><struct><member><name>methodName</name><value><string>supervisor.getState</string></value></member>\
        <member><name>params</name><value><array><data></data></array></value></member></struct></value>\
        <value><struct><member><name>methodName</name><value><string>supervisor.getProcessInfo</string></value></member>\
        <member><name>params</name><value><array><data><value><string>a</string></value></data></array></value></member></struct></value>\
        </data></array></value></param></params></methodCall>\n";
    assert_eq!(String::from_utf8(body).unwrap(), expected);
}

#[test]
fn split_multicall_values_and_faults() {
    let fault = Value::Struct(vec![
        ("faultCode".into(), Value::Int(1)),
        ("faultString".into(), Value::String("UNKNOWN_METHOD".into())),
    ]);
    let state = Value::Struct(vec![("statecode".into(), Value::Int(1))]);
    let value = Value::Array(vec![
        Value::Array(vec![Value::Int(1)]),
        fault,
        state.clone(),
    ]);
    assert_eq!(
        split_multicall(value),
        Ok(vec![
            Ok(Value::Array(vec![Value::Int(1)])),
            Err(Fault {
                code: 1,
                message: "UNKNOWN_METHOD".into()
            }),
            Ok(state),
        ])
    );
    assert_eq!(
        split_multicall(Value::Int(3)),
        Err(DecodeError::BadMulticall(
            "expected an array, found an int".into()
        ))
    );
}

#[test]
fn multicall_wrappers_are_removed_only_when_present() {
    let proc_struct = Value::Struct(vec![("name".into(), Value::String("a".into()))]);
    // supervisord's bare form: a one-process array stays as it is.
    let bare = Value::Array(vec![proc_struct.clone()]);
    assert_eq!(unwrap_multicall(bare.clone(), true), bare);
    // The conventional form wraps the array once more.
    let wrapped = Value::Array(vec![bare.clone()]);
    assert_eq!(unwrap_multicall(wrapped, true), bare);
    let empty_wrapped = Value::Array(vec![Value::Array(vec![])]);
    assert_eq!(unwrap_multicall(empty_wrapped, true), Value::Array(vec![]));
    // Scalars and structs: bare or wrapped.
    let version = Value::String("4.3.0".into());
    assert_eq!(unwrap_multicall(version.clone(), false), version);
    assert_eq!(
        unwrap_multicall(Value::Array(vec![version.clone()]), false),
        version
    );
}

#[test]
fn html_replies_are_recognised() {
    let html = DecodeError::Html;
    for body in [
        "<!DOCTYPE html>\n<html><body>Supervisor Status</body></html>",
        "  \n<!doctype HTML PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\">",
        "<HTML><head></head></HTML>",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"x\">\n<html/>",
        "<?xml version=\"1.0\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><body/></html>",
    ] {
        assert_eq!(decode_response(body.as_bytes()), Err(html.clone()), "{body}");
    }
    assert_eq!(
        html.to_string(),
        "the reply is an HTML page, not XML-RPC: is the URL missing /RPC2?"
    );
}

#[test]
fn dtd_and_entity_expansion_are_refused() {
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
                  <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n\
                  <methodResponse><params><param><value><string>&lol2;</string></value></param></params></methodResponse>";
    assert_eq!(decode_response(laughs.as_bytes()), Err(DecodeError::Dtd));
    assert_eq!(
        decode_value("<value><string>&lol9;</string></value>"),
        Err(DecodeError::UnknownEntity("lol9".into()))
    );
    let external = "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><methodResponse/>";
    assert_eq!(decode_response(external.as_bytes()), Err(DecodeError::Dtd));
}

#[test]
fn bad_character_references_are_errors() {
    assert!(matches!(
        decode_value("<value><string>&#0;</string></value>"),
        Err(DecodeError::Xml { .. })
    ));
    assert!(matches!(
        decode_value("<value><string>&#xZZ;</string></value>"),
        Err(DecodeError::Xml { .. })
    ));
}

#[test]
fn nesting_is_capped() {
    let nested = |levels: usize| {
        let mut xml = String::new();
        for _ in 0..levels {
            xml.push_str("<value><array><data>");
        }
        for _ in 0..levels {
            xml.push_str("</data></array></value>");
        }
        xml
    };
    assert!(decode_value(&nested(MAX_DEPTH)).is_ok());
    assert_eq!(
        decode_value(&nested(MAX_DEPTH + 1)),
        Err(DecodeError::TooDeep { limit: MAX_DEPTH })
    );
    // Far deeper input fails at the cap, without reading (or recursing) any further.
    assert_eq!(
        decode_value(&nested(100_000)),
        Err(DecodeError::TooDeep { limit: MAX_DEPTH })
    );
}

#[test]
fn invalid_utf8_is_an_error() {
    let mut body = response("<value><string>caf").into_bytes();
    let at = body.len();
    body.extend_from_slice(b"\xE9</string></value>");
    assert_eq!(decode_response(&body), Err(DecodeError::InvalidUtf8 { at }));
}

#[test]
fn bad_scalars_are_errors() {
    let cases = [
        ("<value><int>12a</int></value>", "int", "12a"),
        ("<value><int></int></value>", "int", ""),
        (
            "<value><int>99999999999999999999</int></value>",
            "int",
            "99999999999999999999",
        ),
        ("<value><boolean>true</boolean></value>", "boolean", "true"),
        ("<value><double>1.2.3</double></value>", "double", "1.2.3"),
        ("<value><double>inf</double></value>", "double", "inf"),
        ("<value><double>NaN</double></value>", "double", "NaN"),
    ];
    for (xml, kind, text) in cases {
        assert_eq!(
            decode_value(xml),
            Err(DecodeError::BadScalar {
                kind,
                text: text.into()
            }),
            "{xml}"
        );
    }
    assert!(matches!(
        decode_value("<value><base64>!!!</base64></value>"),
        Err(DecodeError::BadBase64(_))
    ));
}

#[test]
fn long_quotes_are_cut() {
    let long = "x".repeat(200);
    let Err(DecodeError::BadScalar { text, .. }) =
        decode_value(&format!("<value><int>{long}</int></value>"))
    else {
        panic!("expected a scalar error");
    };
    assert_eq!(text, format!("{}...", "x".repeat(QUOTE_LIMIT)));
}

#[test]
fn trailing_garbage_is_an_error() {
    for tail in ["garbage", "<methodResponse/>", "<!-- ok --><x/>"] {
        let body = format!("{}{tail}", response("<value><int>1</int></value>"));
        assert_eq!(
            decode_response(body.as_bytes()),
            Err(DecodeError::TrailingContent),
            "{tail}"
        );
    }
    let body = format!("{}<!-- fine -->\n", response("<value><int>1</int></value>"));
    assert_eq!(decode_response(body.as_bytes()), Ok(Ok(Value::Int(1))));
}

#[test]
fn structural_errors() {
    assert_eq!(decode_response(b""), Err(DecodeError::Empty));
    assert_eq!(decode_response(b" \n"), Err(DecodeError::Empty));
    assert_eq!(
        decode_response(b"Unauthorized"),
        Err(DecodeError::Unexpected {
            expected: "<methodResponse>",
            found: "text 'Unauthorized'".into()
        })
    );
    assert_eq!(
        decode_response(b"<methodCall/>"),
        Err(DecodeError::Unexpected {
            expected: "<methodResponse>",
            found: "<methodCall/>".into()
        })
    );
    assert_eq!(
        decode_value("<value><float>1</float></value>"),
        Err(DecodeError::UnknownType("float".into()))
    );
    assert_eq!(
        decode_value("<value>x<int>1</int></value>"),
        Err(DecodeError::Unexpected {
            expected: "a value type or </value>",
            found: "text 'x'".into()
        })
    );
    assert!(matches!(
        decode_response(b"<methodResponse><params><param><value><int>1</int></value></param>"),
        Err(DecodeError::Xml { .. }) | Err(DecodeError::Unexpected { .. })
    ));
    assert!(matches!(
        decode_response(b"<methodResponse><params></params></methodResponse>"),
        Err(DecodeError::Unexpected { .. })
    ));
    assert!(matches!(
        decode_value("<value><int>1</string></value>"),
        Err(DecodeError::Xml { .. })
    ));
}

#[test]
fn truncated_and_corrupted_replies_are_errors_not_panics() {
    let value = Value::Array(vec![Value::Struct(vec![
        ("name".into(), Value::String("a&b".into())),
        ("pid".into(), Value::Int(7)),
        ("ok".into(), Value::Bool(true)),
        ("bytes".into(), Value::Base64(vec![1, 2, 3])),
    ])]);
    let body = encode_response(&value);
    let bytes = body.as_bytes();
    let full_len = body.trim_end().len();
    for cut in 0..full_len {
        let prefix = bytes.get(..cut).unwrap_or_default();
        assert!(decode_response(prefix).is_err(), "prefix of {cut} bytes");
    }
    for at in 0..bytes.len() {
        for replacement in [b'<', b'>', b'&', b'/', b'x', 0xFF] {
            let mut corrupted = bytes.to_vec();
            if let Some(byte) = corrupted.get_mut(at) {
                *byte = replacement;
            }
            let _ = decode_response(&corrupted);
        }
    }
}

#[test]
fn encodings() {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params><param>\
                <value><int>1</int></value></param></params></methodResponse>";
    assert_eq!(decode_response(body.as_bytes()), Ok(Ok(Value::Int(1))));
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(body.as_bytes());
    assert_eq!(decode_response(&bom), Ok(Ok(Value::Int(1))));
    let latin = body.replace("UTF-8", "ISO-8859-1");
    assert_eq!(
        decode_response(latin.as_bytes()),
        Err(DecodeError::UnsupportedEncoding("ISO-8859-1".into()))
    );
}
