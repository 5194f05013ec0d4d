//! Staff API tokens: created by the CLI, shown once, stored as SHA-256 hashes.

use anyhow::bail;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::staff_tokens;
use super::{DbConnection, now};
use crate::domain::Token;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = staff_tokens)]
pub struct StaffToken {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

/// Creates a token named `name`; the raw token is returned once and never stored.
pub fn create_staff_token(conn: &mut DbConnection, name: &str) -> anyhow::Result<Token> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        bail!("a token name must have 1 to 100 characters and no control characters");
    }
    let exists: i64 = staff_tokens::table
        .filter(staff_tokens::name.eq(name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        bail!("a token named {name:?} already exists; revoke it or pick another name");
    }
    let token = Token::generate();
    diesel::insert_into(staff_tokens::table)
        .values((
            staff_tokens::name.eq(name),
            staff_tokens::token_hash.eq(token.hash()),
            staff_tokens::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Revokes the token named `name`; false when there is no such active token.
pub fn revoke_staff_token(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::update(
        staff_tokens::table
            .filter(staff_tokens::name.eq(name))
            .filter(staff_tokens::revoked_at.is_null()),
    )
    .set(staff_tokens::revoked_at.eq(now()))
    .execute(conn)
    .map(|n| n > 0)
}

pub fn list_staff_tokens(conn: &mut DbConnection) -> QueryResult<Vec<StaffToken>> {
    staff_tokens::table
        .order(staff_tokens::name)
        .select(StaffToken::as_select())
        .load(conn)
}

/// The name of the active token with this hash, recording that it was used.
pub fn authenticate_staff_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<String>> {
    let name: Option<String> = staff_tokens::table
        .filter(staff_tokens::token_hash.eq(token_hash))
        .filter(staff_tokens::revoked_at.is_null())
        .select(staff_tokens::name)
        .first(conn)
        .optional()?;
    if name.is_some() {
        diesel::update(staff_tokens::table.filter(staff_tokens::token_hash.eq(token_hash)))
            .set(staff_tokens::last_used_at.eq(now()))
            .execute(conn)?;
    }
    Ok(name)
}
