//! A table of hostile signups: each gets the right status, nothing is stored wrongly, and no
//! answer echoes the input unescaped.

use crate::helpers::spawn_app;

enum Body {
    Json(serde_json::Value),
    Raw(&'static str, Vec<u8>),
}

struct Case {
    what: &'static str,
    body: Body,
    status: u16,
    /// The address stored, for accepted signups.
    stored: Option<&'static str>,
}

fn json(
    what: &'static str,
    value: serde_json::Value,
    status: u16,
    stored: Option<&'static str>,
) -> Case {
    Case {
        what,
        body: Body::Json(value),
        status,
        stored,
    }
}

fn raw(
    what: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
) -> Case {
    Case {
        what,
        body: Body::Raw(content_type, body.into()),
        status,
        stored: None,
    }
}

fn email(what: &'static str, address: &str, status: u16, stored: Option<&'static str>) -> Case {
    json(
        what,
        serde_json::json!({ "email": address }),
        status,
        stored,
    )
}

fn cases() -> Vec<Case> {
    let form = "application/x-www-form-urlencoded";
    vec![
        email(
            "CRLF header injection",
            "a@example.org\r\nBcc: x@evil.example",
            422,
            None,
        ),
        email(
            "LF header injection",
            "a@example.org\nBcc: x@evil.example",
            422,
            None,
        ),
        email("NUL byte", "al\u{0}ice@example.org", 422, None),
        email(
            "local part of 65",
            &format!("{}@example.org", "a".repeat(65)),
            422,
            None,
        ),
        email(
            "address of 255",
            &format!("a@{}.org", "b".repeat(250)),
            422,
            None,
        ),
        email(
            "domain label of 64",
            &format!("a@{}.org", "c".repeat(64)),
            422,
            None,
        ),
        email("nested quotes", "\"a\\\"b\"@example.org", 422, None),
        email("display name", "Alice <alice@example.org>", 422, None),
        email("two addresses", "a@example.org, b@example.org", 422, None),
        email(
            "SQL in the local part",
            "'; DROP TABLE subscribers;--@example.org",
            422,
            None,
        ),
        email(
            "SQL-ish but valid",
            "o'brien@example.org",
            202,
            Some("o'brien@example.org"),
        ),
        email("empty", "", 422, None),
        email("whitespace only", " \t ", 422, None),
        email("no domain dot", "alice@localhost", 422, None),
        email("IP literal", "alice@[127.0.0.1]", 422, None),
        email("trailing dot", "alice@example.org.", 422, None),
        email("broken punycode", "alice@xn--zz-.example", 422, None),
        email(
            "homoglyph IDN domain",
            "alice@exаmple.org",
            202,
            Some("alice@exаmple.org"),
        ),
        email(
            "IDN domain in punycode",
            "bob@xn--bcher-kva.example",
            202,
            Some("bob@bücher.example"),
        ),
        email(
            "unicode local part",
            "dörte@example.org",
            202,
            Some("dörte@example.org"),
        ),
        email(
            "right-to-left override",
            "a\u{202e}gro.elpmaxe@example.org",
            422,
            None,
        ),
        email("zero-width space", "al\u{200b}ice@example.org", 422, None),
        email(
            "HTML in the address",
            "<script>alert(1)</script>@example.org",
            422,
            None,
        ),
        json(
            "address as a number",
            serde_json::json!({"email": 42}),
            422,
            None,
        ),
        json(
            "address as a list",
            serde_json::json!({"email": ["a@example.org"]}),
            422,
            None,
        ),
        json(
            "no address",
            serde_json::json!({"name": "Nobody"}),
            422,
            None,
        ),
        json(
            "name with CRLF",
            serde_json::json!({"email": "n1@example.org", "name": "Eve\r\nBcc: x@y.org"}),
            422,
            None,
        ),
        json(
            "name of 101",
            serde_json::json!({"email": "n2@example.org", "name": "x".repeat(101)}),
            422,
            None,
        ),
        json(
            "HTML in the name is kept as text",
            serde_json::json!({"email": "html@example.org", "name": "<script>alert(1)</script>"}),
            202,
            Some("html@example.org"),
        ),
        json(
            "unknown fields are ignored",
            serde_json::json!({"email": "extra@example.org", "admin": true}),
            202,
            Some("extra@example.org"),
        ),
        json(
            "honeypot filled",
            serde_json::json!({"email": "bot@example.org", "website": "x"}),
            202,
            None,
        ),
        raw("broken JSON", "application/json", "{\"email\": ", 422),
        raw("JSON list", "application/json", "[]", 422),
        raw(
            "10 MB body",
            "application/json",
            vec![b' '; 10 * 1024 * 1024],
            413,
        ),
        raw("text/plain", "text/plain", "email=a@example.org", 415),
        raw(
            "XML",
            "application/xml",
            "<email>a@example.org</email>",
            415,
        ),
        raw(
            "multipart",
            "multipart/form-data; boundary=x",
            "--x\r\n",
            415,
        ),
        raw("no content type", "", "email=a@example.org", 415),
        raw(
            "email given twice",
            form,
            "email=a%40example.org&email=b%40example.org",
            422,
        ),
        raw(
            "form with an injected header",
            form,
            "email=a%40example.org%0D%0ABcc%3A+x%40evil.example",
            422,
        ),
    ]
}

/// Announces a 10 MB body and sends only its start, as a client would that waits for the
/// answer: the server must refuse it without reading it all.
async fn oversized_post(address: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /subscriptions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        10 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&[b' '; 4096]).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn hostile_signups_get_the_right_status_and_store_nothing_wrong() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 30);
    for case in cases {
        let before = app.count_subscribers();
        let request = app.client.post(app.url("/subscriptions"));
        let request = match &case.body {
            Body::Json(value) => request.json(value),
            Body::Raw("", body) => request.body(body.clone()),
            Body::Raw(content_type, body) => request
                .header("content-type", *content_type)
                .body(body.clone()),
        };
        let (status, text) = if case.status == 413 {
            oversized_post(&app.address).await
        } else {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        assert_eq!(status, case.status, "{}: {text}", case.what);
        assert!(
            !text.contains("<script>"),
            "{} echoed markup: {text}",
            case.what
        );
        assert!(
            !text.contains("\nBcc"),
            "{} echoed the injected header raw: {text}",
            case.what
        );
        let added = app.count_subscribers() - before;
        match case.stored {
            Some(address) => {
                assert_eq!(added, 1, "{}", case.what);
                assert_eq!(
                    app.subscriber_status(address).as_deref(),
                    Some("pending"),
                    "{} stored as {address}",
                    case.what
                );
            }
            None => assert_eq!(added, 0, "{} stored something", case.what),
        }
    }
    // The name with markup reaches the mail escaped in HTML.
    let mail = app.smtp.wait_for("html@example.org", 1).await.remove(0);
    assert!(mail.html().contains("&lt;script&gt;") && !mail.html().contains("<script>"));
}
