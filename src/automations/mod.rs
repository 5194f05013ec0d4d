//! Digests that make themselves (RSS-to-email). An automation polls the site's feed on its
//! schedule (a conditional GET: an unchanged feed costs one 304), imports the items not yet
//! known as articles, and makes a digest of them: `draft` leaves it for staff and mails them
//! "ready for review", `send` sends it. Nothing new, no digest. The scheduler runs those due
//! (see [`crate::scheduler`]); staff can run one now.

mod input;

pub use input::{AutomationInput, Schedule, parse_automation, render_subject, schedule_in_words};

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;

use crate::configuration::Settings;
use crate::db::Db;
use crate::db::articles::import_articles;
use crate::db::automations::{Automation, RunRecord, record_run};
use crate::db::digests::{ArticleChoice, NewDigest, SendStart, create_digest, queue_digest};
use crate::db::staff::list_staff;
use crate::domain::{AutomationMode, mask_address};
use crate::email::{Composer, Mailer, ReviewMail};
use crate::feeds::{FetchPolicy, Fetched, Validators, fetch_if_changed, parse_feed};

/// What a run did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunOutcome {
    /// `nothing-new`, `draft` (made, waiting for review), `sending`, `not-sent` (made, but it
    /// could not go out) or `failed` (the feed could not be fetched or read).
    pub result: &'static str,
    /// In words, for staff.
    pub outcome: String,
    pub imported: usize,
    pub digest_id: Option<i64>,
}

/// Runs automations: fetches, imports, makes the digest, sends it or tells staff.
#[derive(Clone)]
pub struct Runner {
    db: Db,
    settings: Arc<Settings>,
    composer: Arc<Composer>,
    mailer: Mailer,
    /// Wakes this process's delivery worker when a digest was queued.
    wake: Arc<Notify>,
    policy: FetchPolicy,
}

impl Runner {
    pub fn new(
        db: Db,
        settings: Arc<Settings>,
        composer: Arc<Composer>,
        mailer: Mailer,
        wake: Arc<Notify>,
    ) -> Runner {
        let policy = FetchPolicy::new(settings.feeds.allow_private_networks);
        Runner {
            db,
            settings,
            composer,
            mailer,
            wake,
            policy,
        }
    }

    /// Runs one automation now and records what it did on it.
    pub async fn run(&self, automation: &Automation) -> anyhow::Result<RunOutcome> {
        let since = Validators {
            etag: automation.etag.clone(),
            last_modified: automation.last_modified.clone(),
        };
        let (outcome, validators) = match self.fetch_and_make(automation, &since).await {
            Ok(done) => done,
            Err(problem) => (
                RunOutcome {
                    result: "failed",
                    outcome: problem,
                    imported: 0,
                    digest_id: None,
                },
                since,
            ),
        };
        let record = RunRecord {
            outcome: outcome.outcome.clone(),
            digest_id: outcome.digest_id.or(automation.last_digest_id),
            etag: validators.etag,
            last_modified: validators.last_modified,
        };
        let id = automation.id;
        self.db
            .run(move |conn| Ok(record_run(conn, id, &record)?))
            .await?;
        tracing::info!(
            automation = id,
            result = outcome.result,
            imported = outcome.imported,
            digest = outcome.digest_id,
            "automation ran"
        );
        Ok(outcome)
    }

    /// The run up to the digest: `Err` with words for staff when the feed could not be had.
    async fn fetch_and_make(
        &self,
        automation: &Automation,
        since: &Validators,
    ) -> Result<(RunOutcome, Validators), String> {
        let nothing = |outcome: String| RunOutcome {
            result: "nothing-new",
            outcome,
            imported: 0,
            digest_id: None,
        };
        let url = automation.feed_url.as_str();
        let (bytes, validators) = match fetch_if_changed(url, &self.policy, since).await {
            Ok(Fetched::NotModified) => {
                let unchanged = "nothing new: the feed has not changed since the last run";
                return Ok((nothing(unchanged.into()), since.clone()));
            }
            Ok(Fetched::Body { bytes, validators }) => (bytes, validators),
            Err(e) => return Err(e.to_string()),
        };
        let items = parse_feed(&bytes, Some(url)).map_err(|e| e.to_string())?;
        let (imported, skipped) = self
            .db
            .run(move |conn| import_articles(conn, &items))
            .await
            .map_err(|e| format!("the feed's items could not be stored: {e:#}"))?;
        if imported.is_empty() {
            let known = format!("nothing new: the feed's {skipped} item(s) were all known");
            return Ok((nothing(known), validators));
        }
        let outcome = self
            .make_digest(automation, imported)
            .await
            .unwrap_or_else(|e| RunOutcome {
                result: "failed",
                outcome: format!("new articles were imported, but no digest was made: {e:#}"),
                imported: 0,
                digest_id: None,
            });
        Ok((outcome, validators))
    }

    /// Makes the digest of the new articles, then sends it or tells staff.
    async fn make_digest(
        &self,
        automation: &Automation,
        article_ids: Vec<i64>,
    ) -> anyhow::Result<RunOutcome> {
        let zone = self.settings.site.tz();
        let count = article_ids.len();
        let today = crate::configuration::on_clock(crate::db::now(), zone).date_naive();
        let date = self.composer.texts().date(today);
        let subject =
            render_subject(&automation.subject, &date, count).map_err(anyhow::Error::msg)?;
        let new = NewDigest {
            subject,
            intro: String::new(),
            choice: ArticleChoice::Ids(article_ids),
            archive: true,
        };
        let (digest, articles) = self
            .db
            .run(move |conn| Ok(create_digest(conn, &new)?))
            .await?;
        let mut review = ReviewMail {
            subject: digest.subject.clone(),
            feed_url: automation.feed_url.clone(),
            count,
            titles: articles.into_iter().map(|a| a.title).collect(),
            review_url: format!("{}/admin/digests/{}", self.settings.base_url(), digest.id),
            ready: true,
            problem: None,
        };
        let made = |result, outcome| RunOutcome {
            result,
            outcome,
            imported: count,
            digest_id: Some(digest.id),
        };
        if AutomationMode::parse(&automation.mode) == Some(AutomationMode::Send) {
            match self.settings.site.not_ready_for_digests() {
                None => {
                    let id = digest.id;
                    let started = self.db.run(move |conn| queue_digest(conn, id)).await?;
                    let queued = match started {
                        SendStart::Queued(queued) => queued,
                        _ => 0,
                    };
                    self.wake.notify_one();
                    let sent = format!(
                        "digest {id} of {count} new article(s) is being sent to {queued} subscriber(s)"
                    );
                    return Ok(made("sending", sent));
                }
                Some(why) => {
                    review.ready = false;
                    review.problem = Some(why);
                }
            }
        }
        let told = self.tell_staff(automation, &review).await;
        Ok(match review.problem {
            None => made(
                "draft",
                format!(
                    "digest {} of {count} new article(s) is ready for review; {told}",
                    digest.id
                ),
            ),
            Some(why) => made(
                "not-sent",
                format!(
                    "digest {} of {count} new article(s) was made but not sent: {why}; {told}",
                    digest.id
                ),
            ),
        })
    }

    /// Mails `review` to the automation's `notify` list, or to every staff account; says how
    /// that went, for the run's outcome.
    async fn tell_staff(&self, automation: &Automation, review: &ReviewMail) -> String {
        let named: Vec<String> = automation
            .notify
            .iter()
            .flat_map(|list| list.split(','))
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let recipients = if named.is_empty() {
            match self.db.run(|conn| Ok(list_staff(conn)?)).await {
                Ok(staff) => staff.into_iter().map(|m| m.email).collect(),
                Err(e) => return format!("the staff could not be looked up to tell them: {e:#}"),
            }
        } else {
            named
        };
        if recipients.is_empty() {
            return "nobody was told: there is no staff account (newsletter staff add)".into();
        }
        let mut failed = Vec::new();
        for to in &recipients {
            let sent = match self.composer.staff_mail(to, "review", review) {
                Ok(message) => {
                    let name = format!("review-{}", chrono::Utc::now().timestamp_millis());
                    self.mailer
                        .send_now(&message, &name)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("{e:#}")),
            };
            if let Err(e) = sent {
                tracing::warn!(to = %mask_address(to), error = %e, "review mail not sent");
                failed.push(format!("{} ({e})", mask_address(to)));
            }
        }
        match failed.is_empty() {
            true => format!("mailed {}", recipients.join(", ")),
            false => format!("the mail to staff failed for {}", failed.join(", ")),
        }
    }
}
