//! What staff give for an automation, checked: a feed address, a 5-field crontab schedule read
//! in `site.timezone`, a subject template, a mode and who to tell.

use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::db::automations::NewAutomation;
use crate::domain::{AutomationMode, SubscriberEmail};

/// A schedule in crontab syntax: minute, hour, day of month, month, day of week
/// (`0 9 * * MON` is every Monday at 09:00).
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "schedule {text:?} must have 5 fields: minute hour day-of-month month \
                 day-of-week, like \"0 9 * * MON\" (every Monday at 09:00); it has {fields}"
            ));
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("schedule {text:?} is not a crontab schedule: {e}"))?;
        Ok(Schedule { cron })
    }

    /// The first time after `after` (UTC) that the schedule names on the clock of `zone`, in
    /// UTC; None for a schedule that never comes (the 30th of February).
    pub fn next_after(&self, after: NaiveDateTime, zone: chrono_tz::Tz) -> Option<NaiveDateTime> {
        let local = crate::configuration::on_clock(after, zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.naive_utc())
    }

    /// In words, for staff: "At 09:00 on Monday".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// A stored schedule in words; empty should it no longer parse.
pub fn schedule_in_words(schedule: &str) -> String {
    Schedule::parse(schedule)
        .map(|s| s.describe())
        .unwrap_or_default()
}

/// An automation as the API, the CLI and the staff page take it.
#[derive(Debug, Clone, Deserialize)]
pub struct AutomationInput {
    pub feed_url: String,
    pub schedule: String,
    pub subject: String,
    pub mode: String,
    /// Who gets "ready for review"; empty or absent: every staff account.
    #[serde(default)]
    pub notify: Option<Vec<String>>,
}

/// Renders a subject template: `{{ date }}` is the run's date on the clinic's clock
/// ("7 December 2026"), `{{ count }}` the number of new articles.
pub fn render_subject(template: &str, date: &str, count: usize) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let subject = env
        .render_str(template, minijinja::context! { date, count })
        .map_err(|e| {
            format!(
                "subject {template:?} is not a template that works: {}; use {{{{ date }}}} and {{{{ count }}}}",
                e.detail().unwrap_or(&e.to_string())
            )
        })?;
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 200 || subject.chars().any(char::is_control)
    {
        return Err("the subject must come to 1 to 200 characters and no line breaks".into());
    }
    Ok(subject.to_string())
}

/// Checks an automation and works out its first run after `now`.
pub fn parse_automation(
    input: &AutomationInput,
    zone: chrono_tz::Tz,
    now: NaiveDateTime,
) -> Result<NewAutomation, String> {
    let feed_url = input.feed_url.trim();
    if !url::Url::parse(feed_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(format!(
            "feed_url {feed_url:?} must be the feed's address, starting with http:// or https://"
        ));
    }
    let schedule = Schedule::parse(input.schedule.trim())?;
    let next_run_at = schedule.next_after(now, zone).ok_or_else(|| {
        format!(
            "schedule {:?} never comes round (no such date); pick another",
            input.schedule
        )
    })?;
    let subject = input.subject.trim();
    let today = crate::configuration::on_clock(now, zone).date_naive();
    render_subject(subject, &today.to_string(), 3)?;
    let mode = AutomationMode::parse(input.mode.trim())
        .ok_or("mode must be draft (make it and mail staff to review it) or send")?;
    let notify: Vec<String> = input
        .notify
        .iter()
        .flatten()
        .map(|address| SubscriberEmail::parse(address).map(|a| a.as_str().to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("notify: {e}"))?;
    Ok(NewAutomation {
        feed_url: feed_url.to_string(),
        schedule: input
            .schedule
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        subject: subject.to_string(),
        mode: mode.as_str().to_string(),
        notify: (!notify.is_empty()).then(|| notify.join(", ")),
        next_run_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn every_monday_at_nine_is_nine_on_the_clinics_clock_summer_and_winter() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let monday_nine = Schedule::parse("0 9 * * MON").unwrap();
        // Thursday 3 December 2026 → Monday 7 December, 09:00 CET = 08:00 UTC.
        assert_eq!(
            monday_nine.next_after(at("2026-12-03 08:00"), berlin),
            Some(at("2026-12-07 08:00"))
        );
        // In summer 09:00 CEST is 07:00 UTC.
        assert_eq!(
            monday_nine.next_after(at("2027-06-02 08:00"), berlin),
            Some(at("2027-06-07 07:00"))
        );
        // Exactly at a run, the next is a week on.
        assert_eq!(
            monday_nine.next_after(at("2026-12-07 08:00"), berlin),
            Some(at("2026-12-14 08:00"))
        );
        assert!(
            monday_nine.describe().contains("09:00"),
            "{}",
            monday_nine.describe()
        );
    }

    #[test]
    fn a_schedule_has_five_fields_and_comes_round() {
        for (bad, says) in [
            ("0 0 9 * * MON", "5 fields"),
            ("every monday", "5 fields"),
            ("61 9 * * *", "not a crontab"),
            ("0 9 * * FUNDAY", "not a crontab"),
        ] {
            let error = Schedule::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let input = AutomationInput {
            feed_url: "https://clinic.example/feed.xml".into(),
            schedule: "0 9 30 2 *".into(),
            subject: "Latest research".into(),
            mode: "draft".into(),
            notify: None,
        };
        let never = parse_automation(&input, chrono_tz::UTC, at("2026-12-03 08:00"));
        assert!(never.unwrap_err().contains("never comes round"));
    }

    #[test]
    fn a_subject_template_gets_the_date_and_count_and_a_typo_is_refused() {
        assert_eq!(
            render_subject("Latest research: {{ date }}", "7 December 2026", 3),
            Ok("Latest research: 7 December 2026".into())
        );
        assert_eq!(
            render_subject("{{ count }} new studies", "7 December 2026", 3),
            Ok("3 new studies".into())
        );
        let typo = render_subject("Latest research: {{ dtae }}", "7 December 2026", 3);
        assert!(typo.unwrap_err().contains("not a template that works"));
        let input = AutomationInput {
            feed_url: "ftp://clinic.example/feed.xml".into(),
            schedule: "0 9 * * MON".into(),
            subject: "Latest research".into(),
            mode: "draft".into(),
            notify: Some(vec!["ann@clinic.example".into(), "not an address".into()]),
        };
        let now = at("2026-12-03 08:00");
        assert!(
            parse_automation(&input, chrono_tz::UTC, now)
                .unwrap_err()
                .contains("http")
        );
        let input = AutomationInput {
            feed_url: "https://clinic.example/feed.xml".into(),
            ..input
        };
        assert!(
            parse_automation(&input, chrono_tz::UTC, now)
                .unwrap_err()
                .starts_with("notify")
        );
        let input = AutomationInput {
            notify: Some(vec![
                "ann@clinic.example".into(),
                "bo@clinic.example".into(),
            ]),
            mode: "publish".into(),
            ..input
        };
        assert!(
            parse_automation(&input, chrono_tz::UTC, now)
                .unwrap_err()
                .contains("mode")
        );
        let input = AutomationInput {
            mode: "send".into(),
            ..input
        };
        let new = parse_automation(&input, chrono_tz::UTC, now).unwrap();
        assert_eq!(
            new.notify.as_deref(),
            Some("ann@clinic.example, bo@clinic.example")
        );
        assert_eq!(new.next_run_at, at("2026-12-07 09:00"));
    }
}
