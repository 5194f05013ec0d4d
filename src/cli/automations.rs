//! `newsletter automation add|list|remove|run`: digests that make themselves from the site's
//! feed. The running `serve` or `worker` runs them on their schedule; `run` runs one now.

use std::sync::Arc;

use anyhow::{Context, bail};

use super::{AutomationCommand, open_db};
use crate::automations::{AutomationInput, Runner, parse_automation, schedule_in_words};
use crate::configuration::Settings;
use crate::db::automations::{
    Automation, delete_automation, find_automation, insert_automation, list_automations,
};
use crate::db::staff_time;
use crate::startup::build_parts;

pub async fn automation(settings: Settings, command: AutomationCommand) -> anyhow::Result<()> {
    let zone = settings.site.tz();
    match command {
        AutomationCommand::Add {
            feed,
            schedule,
            subject,
            mode,
            notify,
        } => {
            let input = AutomationInput {
                feed_url: feed,
                schedule,
                subject,
                mode,
                notify,
            };
            let new =
                parse_automation(&input, zone, crate::db::now()).map_err(anyhow::Error::msg)?;
            let db = open_db(&settings)?;
            let automation = db.run(move |conn| insert_automation(conn, &new)).await?;
            println!("automation {} added", automation.id);
            describe(&automation, zone);
        }
        AutomationCommand::List => {
            let db = open_db(&settings)?;
            let automations = db.run(|conn| Ok(list_automations(conn)?)).await?;
            if automations.is_empty() {
                println!(
                    "no automations; add one with: newsletter automation add --feed URL \
                     --schedule \"0 9 * * MON\" --subject \"Latest research: {{{{ date }}}}\" --mode draft"
                );
            }
            for automation in &automations {
                describe(automation, zone);
            }
        }
        AutomationCommand::Remove { id } => {
            let db = open_db(&settings)?;
            if !db.run(move |conn| Ok(delete_automation(conn, id)?)).await? {
                bail!("automation {id} does not exist");
            }
            println!("automation {id} removed; the digests it made stay");
        }
        AutomationCommand::Run { id } => {
            let settings = Arc::new(settings);
            let parts = build_parts(&settings)?;
            let automation = parts
                .db
                .run(move |conn| Ok(find_automation(conn, id)?))
                .await?
                .with_context(|| format!("automation {id} does not exist"))?;
            let runner = Runner::new(
                parts.db.clone(),
                settings.clone(),
                parts.composer.clone(),
                parts.mailer.clone(),
                Arc::default(),
            );
            let outcome = runner.run(&automation).await?;
            println!("automation {id}: {}", outcome.outcome);
            if outcome.result == "failed" {
                bail!("automation {id} failed");
            }
        }
    }
    Ok(())
}

fn describe(automation: &Automation, zone: chrono_tz::Tz) {
    let when = schedule_in_words(&automation.schedule);
    println!(
        "{:>4}  {}  {} ({}, {zone})\n      subject {:?}, mode {}, notify {}\n      next run {}, last run {}{}",
        automation.id,
        automation.feed_url,
        automation.schedule,
        when,
        automation.subject,
        automation.mode,
        automation
            .notify
            .as_deref()
            .unwrap_or("every staff account"),
        staff_time(automation.next_run_at),
        automation
            .last_run_at
            .map(staff_time)
            .unwrap_or_else(|| "-".into()),
        automation
            .last_outcome
            .as_deref()
            .map(|o| format!(": {o}"))
            .unwrap_or_default(),
    );
}
