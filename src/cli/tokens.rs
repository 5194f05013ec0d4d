//! `newsletter token create|revoke|list`: staff API tokens, shown once, stored hashed.

use anyhow::bail;

use super::{TokenCommand, open_db};
use crate::configuration::Settings;
use crate::db::staff_tokens::{create_staff_token, list_staff_tokens, revoke_staff_token};

pub async fn token(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        TokenCommand::Create { name } => {
            let token = db.run(move |conn| create_staff_token(conn, &name)).await?;
            eprintln!(
                "New staff token (shown only now; send it as `Authorization: Bearer <token>`):"
            );
            println!("{}", token.as_str());
        }
        TokenCommand::Revoke { name } => {
            let lookup = name.clone();
            if !db
                .run(move |conn| Ok(revoke_staff_token(conn, &lookup)?))
                .await?
            {
                bail!("no active token named {name:?}");
            }
            println!("token {name:?} revoked");
        }
        TokenCommand::List => {
            let tokens = db.run(|conn| Ok(list_staff_tokens(conn)?)).await?;
            println!("{:<24} {:<20} {:<20} STATE", "NAME", "CREATED", "LAST USED");
            for t in tokens {
                let used = t
                    .last_used_at
                    .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or("never".into());
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<20} {:<20} {state}",
                    t.name,
                    t.created_at.format("%Y-%m-%d %H:%M"),
                    used
                );
            }
        }
    }
    Ok(())
}
