//! What a refusal from the SMTP server means for the list. The rule is conservative: only an
//! answer to RCPT TO that says the mailbox does not exist (5.1.1, 5.1.2, 5.1.3, 5.1.10) marks a
//! subscriber bounced. A refusal of our sender, our content or our reputation (5.7.x, 5.1.7,
//! 5.1.8, anything at MAIL FROM or DATA) is about us: it fails that mail, never the person,
//! and a run of them pauses the digest. An answer without an enhanced code proves nothing about
//! the mailbox and leaves the subscriber alone.

/// Where in the SMTP session the server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    /// Connecting, the greeting, EHLO, STARTTLS or AUTH: about the relay or our settings.
    Connect,
    MailFrom,
    RcptTo,
    /// The DATA command, or the answer to the message itself.
    Data,
}

/// What to do with a delivery the server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again later (a 4xx, a dropped connection, a timeout, or a problem at connect time
    /// that the operator can fix).
    Retry,
    /// The mailbox does not exist: fail the delivery and mark the subscriber bounced.
    Bounce,
    /// About this recipient, but not proof that the mailbox is gone: fail the delivery only.
    Recipient,
    /// About us or our mail: fail the delivery; it counts towards pausing the digest.
    Sender,
}

/// Classifies a refusal at `stage`; `permanent` is a 5xx reply, `reply` its text.
pub fn classify_refusal(stage: SmtpStage, permanent: bool, reply: &str) -> Verdict {
    if !permanent {
        return Verdict::Retry;
    }
    match stage {
        // A 554 greeting or a refused login is fixed by the operator, not by giving up on mail.
        SmtpStage::Connect => Verdict::Retry,
        SmtpStage::MailFrom | SmtpStage::Data => Verdict::Sender,
        SmtpStage::RcptTo => match enhanced_code(reply) {
            Some((5, 1, 1 | 2 | 3 | 10)) => Verdict::Bounce,
            Some((5, 1, 7 | 8)) => Verdict::Sender,
            Some((5, 1 | 2 | 4, _)) => Verdict::Recipient,
            Some((_, 3 | 5 | 6 | 7, _)) => Verdict::Sender,
            Some(_) => Verdict::Recipient,
            None if about_us(reply) => Verdict::Sender,
            None => Verdict::Recipient,
        },
    }
}

/// What a server says when giving up on the same delivery over and over: at RCPT TO it is about
/// the recipient (a full mailbox, endless greylisting), anywhere else about us or the relay.
pub fn exhausted(stage: SmtpStage) -> Verdict {
    match stage {
        SmtpStage::RcptTo => Verdict::Recipient,
        _ => Verdict::Sender,
    }
}

/// The first enhanced status code (RFC 3463) in a reply, e.g. `5.1.1` in
/// "550 5.1.1 <x@example.org>: Recipient address rejected".
pub fn enhanced_code(reply: &str) -> Option<(u8, u16, u16)> {
    reply
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | '(' | ')' | '-' | '<' | '>'))
        .find_map(|word| {
            let word = word
                .trim_start_matches('#')
                .trim_end_matches(['.', ',', ';']);
            let mut parts = word.split('.');
            let class: u8 = parts.next()?.parse().ok()?;
            let subject: u16 = parts.next()?.parse().ok()?;
            let detail: u16 = parts.next()?.parse().ok()?;
            let valid = matches!(class, 2 | 4 | 5) && subject < 1000 && detail < 1000;
            (valid && parts.next().is_none()).then_some((class, subject, detail))
        })
}

/// Words of refusals that are about the sender, for replies without an enhanced code.
fn about_us(reply: &str) -> bool {
    let reply = reply.to_ascii_lowercase();
    [
        "relay",
        "spam",
        "blocked",
        "blacklist",
        "blocklist",
        "policy",
        "reputation",
        "not permitted",
        "authentication",
        "sender",
        "denied",
        "rate limit",
        "too many",
    ]
    .iter()
    .any(|word| reply.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recipient_stage_no_such_mailbox_is_a_bounce() {
        let rcpt = |reply| classify_refusal(SmtpStage::RcptTo, true, reply);
        for reply in [
            "permanent error (550): 5.1.1 <a@example.org>: Recipient address rejected: User unknown",
            "permanent error (550): 5.1.2 bad destination system address",
            "permanent error (553): 5.1.3 bad destination mailbox address syntax",
            "permanent error (550): 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        ] {
            assert_eq!(rcpt(reply), Verdict::Bounce, "{reply}");
        }
        let cases = [
            (
                "permanent error (550): 5.7.1 Service unavailable; client host blocked using Spamhaus",
                Verdict::Sender,
            ),
            (
                "permanent error (554): 5.7.1 <a@example.org>: Relay access denied",
                Verdict::Sender,
            ),
            (
                "permanent error (550): 5.1.7 bad sender mailbox address syntax",
                Verdict::Sender,
            ),
            (
                "permanent error (550): 5.1.8 sender address rejected: domain not found",
                Verdict::Sender,
            ),
            (
                "permanent error (552): 5.2.2 mailbox full",
                Verdict::Recipient,
            ),
            (
                "permanent error (550): 5.4.1 Recipient address rejected: Access denied",
                Verdict::Recipient,
            ),
            (
                "permanent error (550): Mailbox unavailable",
                Verdict::Recipient,
            ),
            ("permanent error (550): User unknown", Verdict::Recipient),
            (
                "permanent error (554): Relay access denied",
                Verdict::Sender,
            ),
            (
                "transient error (451): 4.7.1 greylisted, try again later",
                Verdict::Retry,
            ),
        ];
        for (reply, verdict) in cases {
            let permanent = reply.starts_with("permanent");
            assert_eq!(
                classify_refusal(SmtpStage::RcptTo, permanent, reply),
                verdict,
                "{reply}"
            );
        }
    }

    #[test]
    fn refusals_at_mail_from_or_data_are_about_us_and_connect_problems_are_retried() {
        let no_such_user = "permanent error (550): 5.1.1 user unknown";
        assert_eq!(
            classify_refusal(SmtpStage::MailFrom, true, no_such_user),
            Verdict::Sender
        );
        assert_eq!(
            classify_refusal(SmtpStage::Data, true, no_such_user),
            Verdict::Sender
        );
        assert_eq!(
            classify_refusal(
                SmtpStage::Connect,
                true,
                "permanent error (535): 5.7.8 authentication failed"
            ),
            Verdict::Retry
        );
        assert_eq!(exhausted(SmtpStage::RcptTo), Verdict::Recipient);
        assert_eq!(exhausted(SmtpStage::Connect), Verdict::Sender);
    }

    #[test]
    fn enhanced_codes_are_found_where_servers_put_them() {
        assert_eq!(
            enhanced_code("permanent error (550): 5.1.1 <a@b.org>"),
            Some((5, 1, 1))
        );
        assert_eq!(
            enhanced_code("550-5.1.1 The email account does not exist"),
            Some((5, 1, 1))
        );
        assert_eq!(
            enhanced_code("550 #5.1.0 Address rejected."),
            Some((5, 1, 0))
        );
        assert_eq!(enhanced_code("(550): 5.7.1."), Some((5, 7, 1)));
        assert_eq!(enhanced_code("version 1.2.3 of something"), None);
        assert_eq!(enhanced_code("no code at all"), None);
    }
}
