//! `newsletter staff add|list|remove`: the people who may sign in under `/admin`.

use std::io::Read;

use anyhow::{Context, bail};
use secrecy::SecretString;

use super::{StaffCommand, open_db};
use crate::configuration::Settings;
use crate::db::staff::{
    Actor, AddStaffError, add_staff, find_staff_by_email, list_staff, log_activity, remove_staff,
    set_password,
};
use crate::domain::SubscriberEmail;
use crate::domain::password::{check_new_password, hash_password};

pub async fn staff(settings: &Settings, command: StaffCommand) -> anyhow::Result<()> {
    let db = open_db(settings)?;
    match command {
        StaffCommand::Add {
            email,
            name,
            password_stdin,
        } => {
            let email = SubscriberEmail::parse(&email)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .as_ref()
                .to_string();
            let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
            let hash = if password_stdin {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("reading the password from standard input")?;
                let password = password.trim_end_matches(['\r', '\n']).to_string();
                check_new_password(&password).map_err(anyhow::Error::msg)?;
                let secret = SecretString::from(password);
                Some(tokio::task::spawn_blocking(move || hash_password(&secret)).await??)
            } else {
                None
            };
            let (who, add_name, add_hash) = (email.clone(), name.clone(), hash.clone());
            let added = db
                .run(move |conn| {
                    Ok(add_staff(
                        conn,
                        &who,
                        add_name.as_deref(),
                        add_hash.as_deref(),
                    ))
                })
                .await?;
            match added {
                Ok((member, token)) => {
                    let detail = member.label();
                    db.run(move |conn| {
                        Ok(log_activity(
                            conn,
                            &Actor::command_line(),
                            "added staff member",
                            &detail,
                        )?)
                    })
                    .await?;
                    match token {
                        Some(token) => {
                            eprintln!(
                                "Added {}. Send them this link (it works once, for 24 hours) to set their password:",
                                member.email
                            );
                            println!(
                                "{}/admin/setup?token={}",
                                settings.base_url(),
                                token.as_str()
                            );
                        }
                        None => println!(
                            "Added {}; they can sign in at {}/admin/login",
                            member.email,
                            settings.base_url()
                        ),
                    }
                }
                Err(AddStaffError::Exists(_)) if hash.is_some() => {
                    let hash = hash.unwrap_or_default();
                    let who = email.clone();
                    db.run(move |conn| {
                        let member =
                            find_staff_by_email(conn, &who)?.context("the account disappeared")?;
                        set_password(conn, member.id, &hash)?;
                        log_activity(
                            conn,
                            &Actor::command_line(),
                            "set password",
                            &member.label(),
                        )?;
                        Ok(())
                    })
                    .await?;
                    println!("Set a new password for {email}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        StaffCommand::List => {
            let members = db.run(|conn| Ok(list_staff(conn)?)).await?;
            println!("{:<36} {:<24} {:<20} STATE", "EMAIL", "NAME", "ADDED");
            for m in members {
                println!(
                    "{:<36} {:<24} {:<20} {}",
                    m.email,
                    m.name.as_deref().unwrap_or(""),
                    m.created_at.format("%Y-%m-%d %H:%M"),
                    m.state()
                );
            }
        }
        StaffCommand::Remove { email } => {
            let who = email.clone();
            let removed = db
                .run(move |conn| {
                    let Some(member) = find_staff_by_email(conn, &who)? else {
                        return Ok(None);
                    };
                    let removed = remove_staff(conn, member.id)?;
                    if let Some(m) = &removed {
                        log_activity(
                            conn,
                            &Actor::command_line(),
                            "removed staff member",
                            &m.label(),
                        )?;
                    }
                    Ok(removed)
                })
                .await?;
            if removed.is_none() {
                bail!("no staff member with the address {email}");
            }
            println!("Removed {email}; their sessions have ended");
        }
    }
    Ok(())
}
