//! Staff accounts for the pages under `/admin`: who may sign in, their sessions (only a hash of
//! the cookie is stored), their second factor, and the activity log a clinic can show.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{staff_activity, staff_members, staff_recovery_codes, staff_sessions};
use super::{DbConnection, now, write_tx};
use crate::domain::{Token, hash_token};

/// How long a setup link works.
pub const SETUP_LINK_HOURS: i64 = 24;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = staff_members)]
pub struct StaffMember {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    #[serde(skip)]
    pub totp_secret: Option<String>,
    pub setup_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

impl StaffMember {
    /// "Ann Lee <ann@clinic.org>", or the address alone: how the activity log names them.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} <{}>", self.email),
            None => self.email.clone(),
        }
    }

    /// Where the account stands, in words for the staff list (page and command line).
    pub fn state(&self) -> &'static str {
        match (&self.password_hash, &self.totp_secret) {
            (None, _) => "waiting for setup",
            (Some(_), Some(_)) => "active, two-factor",
            (Some(_), None) => "active",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddStaffError {
    #[error("{0} already has a staff account")]
    Exists(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Adds an account and returns it with the token of its one-time setup link (valid
/// [`SETUP_LINK_HOURS`]); with `password_hash` the password is set at once and there is no link.
pub fn add_staff(
    conn: &mut DbConnection,
    email: &str,
    name: Option<&str>,
    password_hash: Option<&str>,
) -> Result<(StaffMember, Option<Token>), AddStaffError> {
    let key = email.to_lowercase();
    let token = password_hash.is_none().then(Token::generate);
    let created = write_tx(conn, |conn| {
        let exists: i64 = staff_members::table
            .filter(staff_members::email_key.eq(&key))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Ok(None);
        }
        let at = now();
        diesel::insert_into(staff_members::table)
            .values((
                staff_members::email.eq(email),
                staff_members::email_key.eq(&key),
                staff_members::name.eq(name),
                staff_members::password_hash.eq(password_hash),
                staff_members::setup_token_hash.eq(token.as_ref().map(Token::hash)),
                staff_members::setup_expires_at.eq(token
                    .as_ref()
                    .map(|_| at + Duration::hours(SETUP_LINK_HOURS))),
                staff_members::created_at.eq(at),
            ))
            .execute(conn)?;
        Ok(find_staff_by_email(conn, &key)?)
    })?;
    match created {
        Some(member) => Ok((member, token)),
        None => Err(AddStaffError::Exists(email.to_string())),
    }
}

pub fn find_staff_by_email(
    conn: &mut DbConnection,
    email: &str,
) -> QueryResult<Option<StaffMember>> {
    staff_members::table
        .filter(staff_members::email_key.eq(email.to_lowercase()))
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

pub fn find_staff(conn: &mut DbConnection, id: i64) -> QueryResult<Option<StaffMember>> {
    staff_members::table
        .find(id)
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

pub fn count_staff(conn: &mut DbConnection) -> QueryResult<i64> {
    staff_members::table.count().get_result(conn)
}

pub fn list_staff(conn: &mut DbConnection) -> QueryResult<Vec<StaffMember>> {
    staff_members::table
        .order(staff_members::email_key)
        .select(StaffMember::as_select())
        .load(conn)
}

/// Removes an account; its sessions end with it. The activity log keeps its entries.
pub fn remove_staff(conn: &mut DbConnection, id: i64) -> anyhow::Result<Option<StaffMember>> {
    write_tx(conn, |conn| {
        let Some(member) = find_staff(conn, id)? else {
            return Ok(None);
        };
        diesel::delete(staff_sessions::table.filter(staff_sessions::staff_id.eq(id)))
            .execute(conn)?;
        diesel::delete(staff_recovery_codes::table.filter(staff_recovery_codes::staff_id.eq(id)))
            .execute(conn)?;
        diesel::update(staff_activity::table.filter(staff_activity::staff_id.eq(id)))
            .set(staff_activity::staff_id.eq(None::<i64>))
            .execute(conn)?;
        diesel::delete(staff_members::table.find(id)).execute(conn)?;
        Ok(Some(member))
    })
}

/// A new setup link for an existing account (the old one stops working).
pub fn renew_setup_link(conn: &mut DbConnection, id: i64) -> QueryResult<Token> {
    let token = Token::generate();
    diesel::update(staff_members::table.find(id))
        .set((
            staff_members::setup_token_hash.eq(token.hash()),
            staff_members::setup_expires_at.eq(now() + Duration::hours(SETUP_LINK_HOURS)),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The account whose setup link this is, while the link still works.
pub fn find_staff_by_setup_token(
    conn: &mut DbConnection,
    token: &Token,
) -> QueryResult<Option<StaffMember>> {
    staff_members::table
        .filter(staff_members::setup_token_hash.eq(token.hash()))
        .filter(staff_members::setup_expires_at.gt(now()))
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

/// Sets the password through a setup link, once: the link is used up in the same statement, so
/// two submissions of one link set one password. `None` when the link no longer works.
pub fn complete_setup(
    conn: &mut DbConnection,
    token: &Token,
    password_hash: &str,
) -> QueryResult<Option<StaffMember>> {
    let member = find_staff_by_setup_token(conn, token)?;
    let Some(member) = member else {
        return Ok(None);
    };
    let changed = diesel::update(
        staff_members::table
            .find(member.id)
            .filter(staff_members::setup_token_hash.eq(token.hash())),
    )
    .set((
        staff_members::password_hash.eq(password_hash),
        staff_members::setup_token_hash.eq(None::<String>),
        staff_members::setup_expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    // A new password ends every earlier session.
    diesel::delete(staff_sessions::table.filter(staff_sessions::staff_id.eq(member.id)))
        .execute(conn)?;
    find_staff(conn, member.id)
}

/// Sets a password directly (`staff add --password-stdin` on an existing account).
pub fn set_password(conn: &mut DbConnection, id: i64, password_hash: &str) -> QueryResult<usize> {
    diesel::update(staff_members::table.find(id))
        .set((
            staff_members::password_hash.eq(password_hash),
            staff_members::setup_token_hash.eq(None::<String>),
            staff_members::setup_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// A signed-in browser.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = staff_sessions)]
pub struct StaffSession {
    pub id: i64,
    pub staff_id: i64,
    pub csrf_token: String,
    pub second_factor_pending: bool,
    pub last_seen_at: NaiveDateTime,
}

/// Starts a session; returns the cookie's value (shown to the browser only).
pub fn create_session(
    conn: &mut DbConnection,
    staff_id: i64,
    second_factor_pending: bool,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> QueryResult<Token> {
    let token = Token::generate();
    let at = now();
    diesel::insert_into(staff_sessions::table)
        .values((
            staff_sessions::staff_id.eq(staff_id),
            staff_sessions::token_hash.eq(token.hash()),
            staff_sessions::csrf_token.eq(Token::generate().as_str()),
            staff_sessions::second_factor_pending.eq(second_factor_pending),
            staff_sessions::created_at.eq(at),
            staff_sessions::last_seen_at.eq(at),
            staff_sessions::ip.eq(ip),
            staff_sessions::user_agent.eq(user_agent),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Seen within this long, a session's `last_seen_at` is not written again (one write a minute
/// per browser at most, not one per page).
const TOUCH_EVERY_SECONDS: i64 = 60;

/// The session of this cookie with its account, unless it has been idle for longer than
/// `idle` (then it is ended). Refreshes `last_seen_at`.
pub fn find_session(
    conn: &mut DbConnection,
    cookie: &str,
    idle: Duration,
) -> QueryResult<Option<(StaffSession, StaffMember)>> {
    let hash = hash_token(cookie);
    let found: Option<(StaffSession, StaffMember)> = staff_sessions::table
        .inner_join(staff_members::table)
        .filter(staff_sessions::token_hash.eq(&hash))
        .select((StaffSession::as_select(), StaffMember::as_select()))
        .first(conn)
        .optional()?;
    let Some((session, member)) = found else {
        return Ok(None);
    };
    let at = now();
    if session.last_seen_at + idle < at {
        diesel::delete(staff_sessions::table.find(session.id)).execute(conn)?;
        return Ok(None);
    }
    if session.last_seen_at + Duration::seconds(TOUCH_EVERY_SECONDS) < at {
        diesel::update(staff_sessions::table.find(session.id))
            .set(staff_sessions::last_seen_at.eq(at))
            .execute(conn)?;
    }
    Ok(Some((session, member)))
}

/// The second factor was given: the session is now fully signed in, under a new cookie value
/// (so a value seen before the second factor is worth nothing).
pub fn complete_second_factor(conn: &mut DbConnection, session_id: i64) -> QueryResult<Token> {
    let token = Token::generate();
    diesel::update(staff_sessions::table.find(session_id))
        .set((
            staff_sessions::token_hash.eq(token.hash()),
            staff_sessions::second_factor_pending.eq(false),
            staff_sessions::last_seen_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(token)
}

pub fn end_session(conn: &mut DbConnection, session_id: i64) -> QueryResult<usize> {
    diesel::delete(staff_sessions::table.find(session_id)).execute(conn)
}

/// Ends every session that has been idle for longer than `idle`.
pub fn end_idle_sessions(conn: &mut DbConnection, idle: Duration) -> QueryResult<usize> {
    diesel::delete(staff_sessions::table.filter(staff_sessions::last_seen_at.lt(now() - idle)))
        .execute(conn)
}

/// Turns on the second factor with `secret` and stores the hashes of `recovery_codes`
/// (replacing earlier ones).
pub fn enable_totp(
    conn: &mut DbConnection,
    staff_id: i64,
    secret: &str,
    recovery_codes: &[String],
) -> anyhow::Result<()> {
    write_tx(conn, |conn| {
        diesel::update(staff_members::table.find(staff_id))
            .set((
                staff_members::totp_secret.eq(secret),
                staff_members::totp_last_step.eq(None::<i64>),
            ))
            .execute(conn)?;
        diesel::delete(
            staff_recovery_codes::table.filter(staff_recovery_codes::staff_id.eq(staff_id)),
        )
        .execute(conn)?;
        for code in recovery_codes {
            diesel::insert_into(staff_recovery_codes::table)
                .values((
                    staff_recovery_codes::staff_id.eq(staff_id),
                    staff_recovery_codes::code_hash.eq(hash_recovery_code(code)),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

pub fn disable_totp(conn: &mut DbConnection, staff_id: i64) -> anyhow::Result<()> {
    write_tx(conn, |conn| {
        diesel::update(staff_members::table.find(staff_id))
            .set(staff_members::totp_secret.eq(None::<String>))
            .execute(conn)?;
        diesel::delete(
            staff_recovery_codes::table.filter(staff_recovery_codes::staff_id.eq(staff_id)),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Recovery codes are typed with or without the dash and in any case.
pub fn hash_recovery_code(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hash_token(&normal)
}

/// Uses up one recovery code; false when it is not one of theirs or was used before.
pub fn use_recovery_code(conn: &mut DbConnection, staff_id: i64, code: &str) -> QueryResult<bool> {
    diesel::update(
        staff_recovery_codes::table
            .filter(staff_recovery_codes::staff_id.eq(staff_id))
            .filter(staff_recovery_codes::code_hash.eq(hash_recovery_code(code)))
            .filter(staff_recovery_codes::used_at.is_null()),
    )
    .set(staff_recovery_codes::used_at.eq(now()))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn unused_recovery_codes(conn: &mut DbConnection, staff_id: i64) -> QueryResult<i64> {
    staff_recovery_codes::table
        .filter(staff_recovery_codes::staff_id.eq(staff_id))
        .filter(staff_recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// Who did something, for the activity log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub staff_id: Option<i64>,
    pub label: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn staff(member: &StaffMember, ip: Option<String>) -> Actor {
        Actor {
            staff_id: Some(member.id),
            label: member.label(),
            ip,
        }
    }

    /// The command line, run by whoever is at this machine.
    pub fn command_line() -> Actor {
        Actor {
            staff_id: None,
            label: "command line".into(),
            ip: None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = staff_activity)]
pub struct Activity {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Writes one line of the activity log ("sent digest", "Latest research (7) to 1,234").
pub fn log_activity(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    detail: &str,
) -> QueryResult<()> {
    diesel::insert_into(staff_activity::table)
        .values((
            staff_activity::staff_id.eq(actor.staff_id),
            staff_activity::actor.eq(&actor.label),
            staff_activity::action.eq(action),
            staff_activity::detail.eq(detail),
            staff_activity::ip.eq(&actor.ip),
            staff_activity::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The log, newest first, with the total.
pub fn list_activity(
    conn: &mut DbConnection,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Activity>, i64)> {
    let total = staff_activity::table.count().get_result(conn)?;
    let rows = staff_activity::table
        .order(staff_activity::id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
        .select(Activity::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// The detail of the newest entry with this action (the feed URL last imported, say).
pub fn last_detail_of(conn: &mut DbConnection, action: &str) -> QueryResult<Option<String>> {
    staff_activity::table
        .filter(staff_activity::action.eq(action))
        .order(staff_activity::id.desc())
        .select(staff_activity::detail)
        .first(conn)
        .optional()
}

/// Uses the code of TOTP time step `step`: true only the first time, and only for a step later
/// than the last one used, so an overheard code cannot be replayed.
pub fn use_totp_step(conn: &mut DbConnection, staff_id: i64, step: i64) -> QueryResult<bool> {
    diesel::update(
        staff_members::table.find(staff_id).filter(
            staff_members::totp_last_step
                .is_null()
                .or(staff_members::totp_last_step.lt(step)),
        ),
    )
    .set(staff_members::totp_last_step.eq(step))
    .execute(conn)
    .map(|n| n == 1)
}
