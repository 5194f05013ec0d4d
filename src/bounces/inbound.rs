//! One message that came back, from a pipe (`newsletter inbound process`): whose mail it was
//! (its VERP tag, else the recipient the message names), what it says ([`super::classify`]),
//! and what that does to the list ([`crate::db::bounces::apply_report`]).

use super::{TagKind, Verp, classify};
use crate::configuration::Settings;
use crate::db::Db;
use crate::db::bounces::{Applied, InboundReport, ReportClass, SoftRule, Target, apply_report};
use crate::domain::mask_address;

/// The largest message read; a bounce that returns a whole large digest is cut there.
pub const MAX_INBOUND_BYTES: usize = 10 * 1024 * 1024;

/// What happened to one recipient of a processed message, in words for a log or a person.
#[derive(Debug, Clone)]
pub struct Handled {
    pub class: &'static str,
    pub applied: Applied,
    /// The recipient, masked.
    pub who: String,
}

/// Reads `raw` and acts on it. `envelope_to` is the address the mail server delivered it to
/// (its VERP tag names our delivery); without it, the message's own headers are searched for a
/// tag. Errors only when the database cannot be reached: the caller (the MTA) tries again.
pub async fn process(
    db: &Db,
    settings: &Settings,
    verp: Option<&Verp>,
    raw: &[u8],
    envelope_to: Option<&str>,
) -> anyhow::Result<Vec<Handled>> {
    let raw = &raw[..raw.len().min(MAX_INBOUND_BYTES)];
    let tagged = verp.and_then(|verp| find_tag(verp, raw, envelope_to));
    let soft = SoftRule {
        limit: settings.bounces.soft_limit,
        window_days: settings.bounces.soft_window_days,
    };
    let reports: Vec<(InboundReport, String)> = match tagged {
        // A mail to a copy's unsubscribe+tag address: an RFC 2369 unsubscribe request.
        Some((TagKind::Unsubscribe, delivery_id)) => vec![(
            InboundReport {
                class: ReportClass::Unsubscribe,
                status: None,
                diagnostic: "asked to unsubscribe by mail (List-Unsubscribe mailto)".into(),
                reporting_mta: None,
                target: Target::Delivery(delivery_id),
            },
            format!("delivery {delivery_id}"),
        )],
        tagged => classify(raw)
            .into_iter()
            .map(|finding| {
                let (target, who) = match (tagged, &finding.recipient) {
                    (Some((_, delivery_id)), _) => (
                        Target::Delivery(delivery_id),
                        format!("delivery {delivery_id}"),
                    ),
                    (None, Some(recipient)) => {
                        (Target::Address(recipient.clone()), mask_address(recipient))
                    }
                    (None, None) => (Target::Nobody, "nobody named".into()),
                };
                let report = InboundReport {
                    class: ReportClass::Bounce(finding.class),
                    status: finding.status,
                    diagnostic: crate::domain::mask_addresses_in(&finding.diagnostic),
                    reporting_mta: finding.reporting_mta,
                    target,
                };
                (report, who)
            })
            .collect(),
    };
    let mut handled = Vec::with_capacity(reports.len());
    for (report, who) in reports {
        let class = report.class.as_str();
        let applied = db
            .run(move |conn| apply_report(conn, &report, soft))
            .await?;
        match &applied {
            Applied::Unmatched => {
                tracing::info!(class, recipient = %who, "a report that matches none of our mail")
            }
            applied => tracing::info!(class, recipient = %who, ?applied, "report processed"),
        }
        handled.push(Handled {
            class,
            applied,
            who,
        });
    }
    Ok(handled)
}

/// Our tag, from the envelope recipient or the headers a mail server records it in.
fn find_tag(verp: &Verp, raw: &[u8], envelope_to: Option<&str>) -> Option<(TagKind, i64)> {
    if let Some(tag) = envelope_to.and_then(|to| verp.verify(to)) {
        return Some(tag);
    }
    let message = mail_parser::MessageParser::default().parse_headers(raw)?;
    [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
        "To",
    ]
    .iter()
    .filter_map(|name| message.header_raw(*name))
    .flat_map(|value| value.split([',', ' ', '<', '>']))
    .find_map(|candidate| verp.verify(candidate))
}
