//! What a message that came back says, recipient by recipient: a hard bounce (the mailbox or
//! domain does not exist), a soft one (full, over quota, temporarily away, expired in a queue),
//! a refusal about us or our mail (policy, spam, reputation, relaying, size), a complaint
//! (RFC 5965 abuse or fraud reports), or nothing to act on (auto-replies, delivery reports
//! that say delivered, a report about our own authentication).
//!
//! Status codes alone are not enough: real reports carry 5.1.1 on a full mailbox and no 5.1.x
//! on many unknown users, so the diagnostic text is read first and decides. A message that is
//! not clearly a hard bounce is never called one: when the words are unclear a permanent
//! failure counts as soft (three of those in a month make it hard, see `bounces.soft_limit`).

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// What a report means for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BounceClass {
    Hard,
    Soft,
    AboutUs,
    Complaint,
    Ignore,
}

impl BounceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceClass::Hard => "hard",
            BounceClass::Soft => "soft",
            BounceClass::AboutUs => "about-us",
            BounceClass::Complaint => "complaint",
            BounceClass::Ignore => "ignore",
        }
    }
}

/// One recipient's part of a report, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The recipient the report names, in lower case; None when it names none.
    pub recipient: Option<String>,
    pub class: BounceClass,
    /// The enhanced status code (`5.1.1`) or reply code, when given.
    pub status: Option<String>,
    /// The server's words, one line, at most 300 characters.
    pub diagnostic: String,
    pub reporting_mta: Option<String>,
    /// What kind of message this was: `dsn`, `arf`, `auto-reply`, `text`, `ses`.
    pub source: &'static str,
}

/// Reads a message and says what it reports, recipient by recipient. A message that is none
/// of the kinds above gives one `Ignore` finding without a recipient.
pub fn classify(raw: &[u8]) -> Vec<Finding> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return vec![nothing("not a mail message")];
    };
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let subject = message.subject().unwrap_or_default().to_string();
    let mut dsn = None;
    let mut feedback = None;
    let mut original_to = None;
    let mut texts = Vec::new();
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("text".into(), "plain".into()));
        let text = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.to_string(),
            PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into(),
            PartType::Message(inner) => {
                if original_to.is_none() {
                    original_to = inner
                        .to()
                        .and_then(|a| a.first())
                        .and_then(|a| a.address())
                        .map(str::to_lowercase);
                }
                continue;
            }
            PartType::Multipart(_) => continue,
        };
        match (ctype.as_str(), subtype.as_str()) {
            (_, "delivery-status") | (_, "global-delivery-status") => dsn = Some(text),
            (_, "feedback-report") => feedback = Some(text),
            ("text", "rfc822-headers") | ("message", "rfc822-headers") if original_to.is_none() => {
                original_to = field_of(&text, "to").and_then(|to| first_address(&to));
            }
            ("text", "html") => texts.push(html_to_text(&text)),
            ("text", _) => texts.push(text),
            _ => {}
        }
    }
    let body = texts.join("\n");

    if let Some(report) = feedback {
        return vec![complaint(&report, original_to)];
    }
    if let Some(finding) = microsoft_or_ses(&header, &body, original_to.as_deref()) {
        return finding;
    }
    if let Some(report) = dsn {
        let found = delivery_status(&report, &body);
        if !found.is_empty() {
            return found;
        }
    }
    // Bounces are automatic too (Exim marks them `Auto-Submitted: auto-replied`): a message
    // that says it is one is read as one.
    if !looks_like_bounce(&header, &subject) && is_auto_reply(&header, &subject) {
        return vec![Finding {
            source: "auto-reply",
            ..nothing("an automatic reply (out of office, vacation)")
        }];
    }
    if subject.to_ascii_lowercase().starts_with("complaint about") {
        return vec![Finding {
            recipient: original_to,
            class: BounceClass::Complaint,
            status: None,
            diagnostic: "complaint report".into(),
            reporting_mta: None,
            source: "arf",
        }];
    }
    free_text(&header, &subject, &body, original_to)
}

/// Says of itself that it is a bounce: its subject, its sender, `X-Failed-Recipients`.
fn looks_like_bounce(header: &dyn Fn(&str) -> String, subject: &str) -> bool {
    let subject = subject.to_ascii_lowercase();
    let from = header("From").to_ascii_lowercase();
    BOUNCE_SUBJECTS.iter().any(|w| subject.contains(w))
        || !header("X-Failed-Recipients").is_empty()
        || from.contains("mailer-daemon")
        || from.contains("postmaster")
        || from.contains("mail delivery")
}

const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "delivery status",
    "delivery failure",
    "delivery failed",
    "failure notice",
    "returned mail",
    "returned to sender",
    "returning message",
    "mail delivery",
    "delivery has failed",
    "could not be delivered",
    "not delivered",
    "rejected",
    "nondeliver",
    "non-deliver",
    "delivery problem",
    "mail failure",
    "error sending",
    "delayed",
    "warning",
    "error",
    "не доставлено",
];

fn nothing(why: &str) -> Finding {
    Finding {
        recipient: None,
        class: BounceClass::Ignore,
        status: None,
        diagnostic: why.to_string(),
        reporting_mta: None,
        source: "text",
    }
}

/// An RFC 5965 feedback report: abuse and fraud (and the unspecified kinds) are complaints; an
/// authentication-failure report is about our own DKIM/SPF, not the reader.
fn complaint(report: &str, original_to: Option<String>) -> Finding {
    let kind = field_of(report, "feedback-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let recipient = field_of(report, "original-rcpt-to")
        .or_else(|| field_of(report, "removal-recipient"))
        .and_then(|r| first_address(&r))
        .or(original_to);
    let class = match kind.as_str() {
        "auth-failure" => BounceClass::AboutUs,
        "not-spam" => BounceClass::Ignore,
        _ => BounceClass::Complaint,
    };
    Finding {
        recipient,
        class,
        status: None,
        diagnostic: format!(
            "feedback report: {}",
            if kind.is_empty() { "abuse" } else { &kind }
        ),
        reporting_mta: field_of(report, "reporting-mta"),
        source: "arf",
    }
}

/// Microsoft's JMRP complaints and Amazon SES notifications (JSON in the body).
fn microsoft_or_ses(
    header: &dyn Fn(&str) -> String,
    body: &str,
    original_to: Option<&str>,
) -> Option<Vec<Finding>> {
    let hotmail = header("X-HmXmrOriginalRecipient");
    if !hotmail.is_empty() || body.contains("This is an email abuse report") {
        let recipient = first_address(&hotmail).or(original_to.map(str::to_string));
        return Some(vec![Finding {
            recipient,
            class: BounceClass::Complaint,
            status: None,
            diagnostic: "complaint (Microsoft JMRP)".into(),
            reporting_mta: None,
            source: "arf",
        }]);
    }
    let json_start = body.find('{')?;
    // The notification, whatever follows it (a signature, an unsubscribe line).
    let value: serde_json::Value = serde_json::Deserializer::from_str(&body[json_start..])
        .into_iter()
        .next()?
        .ok()?;
    let value = match value.get("Message").and_then(|m| m.as_str()) {
        Some(inner) => serde_json::from_str(inner).ok()?,
        None => value,
    };
    let kind = value
        .get("notificationType")
        .or(value.get("eventType"))?
        .as_str()?;
    let mut findings = Vec::new();
    match kind {
        "Complaint" => {
            for r in value["complaint"]["complainedRecipients"].as_array()? {
                findings.push(Finding {
                    recipient: r["emailAddress"].as_str().and_then(first_address),
                    class: BounceClass::Complaint,
                    status: None,
                    diagnostic: "complaint (Amazon SES)".into(),
                    reporting_mta: None,
                    source: "ses",
                });
            }
        }
        "Bounce" => {
            let permanent = value["bounce"]["bounceType"].as_str() == Some("Permanent");
            for r in value["bounce"]["bouncedRecipients"].as_array()? {
                let diagnostic = r["diagnosticCode"].as_str().unwrap_or_default().to_string();
                let status = r["status"].as_str().map(str::to_string);
                let class = judge(status.as_deref(), &diagnostic, permanent);
                findings.push(Finding {
                    recipient: r["emailAddress"].as_str().and_then(first_address),
                    class,
                    status,
                    diagnostic: one_line(&diagnostic),
                    reporting_mta: value["bounce"]["reportingMTA"].as_str().map(str::to_string),
                    source: "ses",
                });
            }
        }
        "Delivery" => findings.push(Finding {
            source: "ses",
            ..nothing("Amazon SES: delivered")
        }),
        _ => return None,
    }
    (!findings.is_empty()).then_some(findings)
}

/// The per-recipient blocks of an RFC 3464 report.
fn delivery_status(report: &str, body: &str) -> Vec<Finding> {
    let unfolded = report.replace("\r\n", "\n");
    let mut blocks = unfolded.split("\n\n").filter(|b| !b.trim().is_empty());
    let per_message = blocks.next().unwrap_or_default();
    let reporting_mta = field_of(per_message, "reporting-mta").map(|m| strip_type(&m));
    let mut findings = Vec::new();
    for block in std::iter::once(per_message).chain(blocks) {
        let Some(recipient) = field_of(block, "final-recipient")
            .or_else(|| field_of(block, "original-recipient"))
            .and_then(|r| first_address(&strip_type(&r)))
        else {
            continue;
        };
        let action = field_of(block, "action")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let status = field_of(block, "status")
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_string());
        let mut diagnostic = field_of(block, "diagnostic-code")
            .map(|d| strip_type(&d))
            .unwrap_or_default();
        if diagnostic.trim().is_empty() {
            // Many MTAs put their words only in the human-readable part.
            diagnostic = around(body, &recipient).unwrap_or_default();
        }
        let class = match action.as_str() {
            "delivered" | "relayed" | "expanded" => BounceClass::Ignore,
            "delayed" => BounceClass::Soft,
            _ => judge(status.as_deref(), &diagnostic, true),
        };
        findings.push(Finding {
            recipient: Some(recipient),
            class,
            status: status.filter(|s| !s.is_empty()),
            diagnostic: one_line(&diagnostic),
            reporting_mta: reporting_mta.clone(),
            source: "dsn",
        });
    }
    findings
}

fn is_auto_reply(header: &dyn Fn(&str) -> String, subject: &str) -> bool {
    let submitted = header("Auto-Submitted").to_ascii_lowercase();
    if submitted.starts_with("auto-replied") {
        return true;
    }
    if !header("X-Autoreply").is_empty()
        || !header("X-Autorespond").is_empty()
        || header("Precedence").eq_ignore_ascii_case("auto_reply")
    {
        return true;
    }
    let subject = subject.to_ascii_lowercase();
    [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "auto reply",
        "vacation",
        "abwesenheit",
        "on leave",
        "away from",
        "absence",
        "automatische antwort",
    ]
    .iter()
    .any(|s| subject.contains(s))
}

/// A bounce without a DSN part: the recipient from `X-Failed-Recipients`, the text or the
/// returned message, the class from the words around it.
fn free_text(
    header: &dyn Fn(&str) -> String,
    subject: &str,
    body: &str,
    original_to: Option<String>,
) -> Vec<Finding> {
    if !looks_like_bounce(header, subject) {
        return vec![nothing("not a bounce, a complaint or an automatic reply")];
    }
    let failed = header("X-Failed-Recipients");
    // The bounce's own addresses (our return path, the daemon) are never the failed recipient.
    let own: Vec<String> = ["To", "From", "Return-Path", "Delivered-To"]
        .iter()
        .flat_map(|name| addresses(&header(name)))
        .collect();
    let recipients: Vec<String> = if failed.is_empty() {
        named_recipients(body)
            .into_iter()
            .chain(original_to)
            .filter(|address| !own.contains(address))
            .take(1)
            .collect()
    } else {
        failed.split(',').filter_map(first_address).collect()
    };
    let status = enhanced_code(body);
    let diagnostic = recipients
        .first()
        .and_then(|r| around(body, r))
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| body.chars().take(2000).collect());
    let class = judge(status.as_deref(), &diagnostic, true);
    let class = match (class, judge(status.as_deref(), body, true)) {
        // The words next to the address decide; the whole text can only make it milder.
        (BounceClass::Hard, BounceClass::Hard) => BounceClass::Hard,
        (BounceClass::Hard, other) => other,
        (class, _) => class,
    };
    let finding = |recipient: Option<String>| Finding {
        recipient,
        class,
        status: status.clone(),
        diagnostic: one_line(&diagnostic),
        reporting_mta: None,
        source: "text",
    };
    if recipients.is_empty() {
        return vec![finding(None)];
    }
    recipients.into_iter().map(|r| finding(Some(r))).collect()
}

/// The class of a failure from its status code and, above all, its words. `permanent` says
/// the report gives up on it (a DSN's `failed`).
pub fn judge(status: Option<&str>, diagnostic: &str, permanent: bool) -> BounceClass {
    let text = diagnostic.to_ascii_lowercase();
    let has = |patterns: &[&str]| patterns.iter().any(|p| text.contains(p));
    let status = status.unwrap_or_default();
    let code = enhanced_code(status).or_else(|| enhanced_code(&text));
    let code = code.as_deref().unwrap_or_default();

    // About us or our mail: policy, spam, reputation, authentication, relaying, size. These
    // words outweigh "rejected" and "unknown" elsewhere in the same line.
    if has(ABOUT_US) {
        return BounceClass::AboutUs;
    }
    if has(FULL_OR_AWAY) {
        return BounceClass::Soft;
    }
    if has(NO_SUCH_MAILBOX) || has(NO_SUCH_DOMAIN) {
        // Words and a status that names the mailbox or domain: hard. "User unknown" refused
        // after the message was sent (the mailbox existed at RCPT), with a mailbox-status code
        // (5.2.x: some carriers say "unknown" for what their filter refused), with a code that
        // says nothing (5.0.0) or with none is not proof enough: soft, and three in a month
        // are hard.
        let names_it = matches!(
            code,
            "5.1.1" | "5.1.2" | "5.1.3" | "5.1.10" | "5.1.0" | "5.4.4"
        );
        let after_data = has(&["end of data", "data command", ">>> data", "after data"]);
        return if names_it && !after_data {
            BounceClass::Hard
        } else {
            BounceClass::Soft
        };
    }
    if has(TEMPORARY) || code.starts_with('4') || !permanent {
        return BounceClass::Soft;
    }
    match code {
        // No words either way: the code alone. 5.1.1-5.1.3 and 5.1.10 name the mailbox.
        "5.1.1" | "5.1.2" | "5.1.3" | "5.1.10" if text.trim().is_empty() => BounceClass::Hard,
        c if c.starts_with("5.7") || c == "5.3.4" || c.starts_with("5.6") => BounceClass::AboutUs,
        _ => BounceClass::Soft,
    }
}

const ABOUT_US: &[&str] = &[
    "after mail from",
    "sender address",
    "domain of sender",
    "spam",
    "blacklist",
    "blocklist",
    "block list",
    "blocked",
    "listed at",
    "listed in",
    "spamhaus",
    "reputation",
    "policy",
    "not permitted",
    "not allowed",
    "relay access denied",
    "relaying denied",
    "relay not permitted",
    "unable to relay",
    "relaying",
    "authentication",
    "dmarc",
    "spf",
    "dkim",
    "ptr",
    "reverse dns",
    "rdns",
    "too large",
    "too big",
    "size limit",
    "exceeds the maximum",
    "message size",
    "virus",
    "malware",
    "content rejected",
    "content filter",
    "junk",
    "bulk mail",
    "unsolicited",
    "rate limit",
    "access denied",
    "sender denied",
    "sender address rejected",
    "sender rejected",
    "refused to accept",
    "suspicious",
    "tls",
    "encryption",
    "syntax error",
    "command not recognized",
    "5.7.",
];

const FULL_OR_AWAY: &[&str] = &[
    // The receiving system's own delivery agent failed: not the mailbox's doing.
    "procmail",
    "couldn't create",
    "mailer error",
    "local delivery failed",
    "mailbox full",
    "mailbox is full",
    "mailbox has exceeded",
    "mailbox size",
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeded storage",
    "exceeded the storage",
    "insufficient storage",
    "insufficient system storage",
    "out of storage",
    "disk full",
    "storage limit",
    "too many messages",
    "mailbox is inactive",
    "account is inactive",
    "inactive account",
    "account disabled",
    "account has been disabled",
    "disabled recipient",
    "suspended",
    "temporarily disabled",
    "mailbox unavailable",
    "is unavailable",
];

const NO_SUCH_MAILBOX: &[&str] = &[
    "user unknown",
    "unknown user",
    "unknown recipient",
    "recipient unknown",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "no such account",
    "no mailbox",
    "mailbox not found",
    "mailbox does not exist",
    "mailbox unknown",
    "account does not exist",
    "address does not exist",
    "email account that you tried to reach does not exist",
    "user does not exist",
    "recipient does not exist",
    "does not exist",
    "doesn't exist",
    "not exist",
    "invalid recipient",
    "invalid mailbox",
    "invalid address",
    "not a valid mailbox",
    "unknown or illegal alias",
    "unknown address",
    "address unknown",
    "user not found",
    "recipient not found",
    "no such person",
    "unrouteable address",
    "not our customer",
    "is not a known user",
    "addressee unknown",
    "undeliverable address",
    "user doesn't have",
    "bad destination mailbox",
    "mailbox disabled",
    "account expired",
    "unknown local part",
    "recipient rejected",
    "no longer",
    "hasn't been accepted",
];

const NO_SUCH_DOMAIN: &[&str] = &[
    "host unknown",
    "unknown host",
    "host not found",
    "domain not found",
    "no such domain",
    "name or service not known",
    "nxdomain",
    "domain does not exist",
    "unrouteable mail domain",
    "no mx",
    "null mx",
    "does not accept mail",
    "host or domain name not found",
];

const TEMPORARY: &[&str] = &[
    "temporar",
    "try again",
    "try later",
    "deferred",
    "expired",
    "timed out",
    "timeout",
    "time out",
    "retry",
    "too many connections",
    "too many recipients",
    "connection refused",
    "connection reset",
    "could not connect",
    "network",
    "no route",
    "service unavailable",
    "system error",
    "resources",
    "loop",
];

/// A field of a header-like block ("Final-Recipient: rfc822; a@b"), unfolded.
fn field_of(block: &str, name: &str) -> Option<String> {
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = value.trim().to_string();
        while let Some(next) = lines.peek() {
            if !next.starts_with([' ', '\t']) {
                break;
            }
            value.push(' ');
            value.push_str(next.trim());
            lines.next();
        }
        return Some(value);
    }
    None
}

/// `rfc822; a@b` → `a@b`, `smtp; 550 …` → `550 …`.
fn strip_type(value: &str) -> String {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') && kind.len() < 20 => rest.trim().to_string(),
        _ => value.trim().to_string(),
    }
}

/// The first address in a string, lower case.
fn first_address(text: &str) -> Option<String> {
    addresses(text).into_iter().next()
}

fn addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "<>()[]',;:=".contains(c)) {
        let word = word.trim_matches(|c: char| c == '.' || c == '`');
        let Some((local, domain)) = word.split_once('@') else {
            continue;
        };
        // A quoted local part ("a..b"@c) stays whole; a lone quote is not part of an address.
        let local = if local.starts_with('"') && local.ends_with('"') && local.len() > 2 {
            local
        } else {
            local.trim_start_matches('"')
        };
        let domain = domain.trim_end_matches('"');
        if local.is_empty() || !domain.contains('.') || domain.contains(['@', '"']) {
            continue;
        }
        let word = format!("{local}@{domain}");
        found.push(word.to_ascii_lowercase());
    }
    found
}

/// Addresses a bounce's text names as the ones that failed: Postfix's `<a@b>:`, qmail's, Exim's
/// indented address, "To: a@b"; never the mailer daemon's own.
fn named_recipients(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in body.lines() {
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        // "from a@b", "sent by", "MAIL From:<a@b>": the sender, not the recipient.
        if lower.starts_with("from ") || lower.contains("mail from") || lower.contains("sender") {
            continue;
        }
        let is_named = trimmed.starts_with('<')
            || (line.starts_with([' ', '\t']) && trimmed.contains('@') && !trimmed.contains(' '))
            || trimmed.to_ascii_lowercase().starts_with("to:")
            || trimmed.to_ascii_lowercase().starts_with("recipient")
            || trimmed.to_ascii_lowercase().contains("original-recipient")
            || trimmed.to_ascii_lowercase().contains("final-recipient");
        if !is_named {
            continue;
        }
        for address in addresses(trimmed) {
            let daemon = ["mailer-daemon@", "postmaster@", "root@"]
                .iter()
                .any(|d| address.starts_with(d));
            if !daemon && !found.contains(&address) {
                found.push(address);
            }
        }
    }
    if found.is_empty() {
        // Any address in the text, but not the daemon's.
        found = addresses(body)
            .into_iter()
            .filter(|a| !a.starts_with("mailer-daemon@") && !a.starts_with("postmaster@"))
            .take(1)
            .collect();
    }
    found
}

/// The lines at and after the first mention of `recipient`: what the server said of it.
fn around(body: &str, recipient: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let at = lower.find(recipient)?;
    let start = lower[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    Some(body[start..].lines().take(6).collect::<Vec<_>>().join(" "))
}

/// The first enhanced status code (`5.1.1`) in a text.
fn enhanced_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (i, c) in bytes.iter().enumerate() {
        if !matches!(c, b'2' | b'4' | b'5') || bytes.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.') {
            continue;
        }
        let rest = &text[i + 2..];
        let first: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if first.is_empty() || first.len() > 3 || !rest[first.len()..].starts_with('.') {
            continue;
        }
        let second: String = rest[first.len() + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if second.is_empty() || second.len() > 3 {
            continue;
        }
        return Some(format!("{}.{first}.{second}", *c as char));
    }
    None
}

fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.chars().take(300).collect()
}

fn html_to_text(html: &str) -> String {
    crate::feeds::plain_text(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_decide_over_the_status_code() {
        // A full mailbox reported with 5.1.1 is soft. An unknown user is hard with a status
        // that names the mailbox, and soft with one that proves nothing (5.0.0), a
        // mailbox-status code (5.2.x: carriers say "unknown" for what their filter refused) or
        // after DATA.
        assert_eq!(
            judge(Some("5.1.1"), "552 Mailbox is full", true),
            BounceClass::Soft
        );
        assert_eq!(
            judge(Some("5.1.1"), "550 Unknown user kijitora", true),
            BounceClass::Hard
        );
        for (status, words) in [
            ("5.0.0", "550 Unknown user kijitora"),
            ("5.2.0", "550 Unknown user kijitora"),
            (
                "5.1.1",
                "550 5.1.1 User unknown (in reply to end of DATA command)",
            ),
        ] {
            assert_eq!(
                judge(Some(status), words, true),
                BounceClass::Soft,
                "{status} {words}"
            );
        }
        assert_eq!(
            judge(Some("5.7.1"), "550 5.7.1 Message rejected as spam", true),
            BounceClass::AboutUs
        );
        assert_eq!(judge(Some("4.2.2"), "over quota", true), BounceClass::Soft);
        assert_eq!(judge(Some("5.1.1"), "", true), BounceClass::Hard);
        assert_eq!(
            judge(Some("5.0.0"), "", true),
            BounceClass::Soft,
            "unclear: never hard"
        );
        assert_eq!(
            judge(None, "User unknown", true),
            BounceClass::Soft,
            "no code: no proof"
        );
        assert_eq!(
            judge(Some("4.1.1"), "User unknown", true),
            BounceClass::Soft
        );
    }

    #[test]
    fn codes_and_addresses_are_found_in_text() {
        assert_eq!(enhanced_code("550 5.1.1 <a@b.c>: no"), Some("5.1.1".into()));
        assert_eq!(enhanced_code("version 1.2.3.4"), None);
        assert_eq!(
            first_address("rfc822; <Kijitora@Example.JP>"),
            Some("kijitora@example.jp".into())
        );
        assert_eq!(strip_type("smtp; 550 no such user"), "550 no such user");
    }
}
