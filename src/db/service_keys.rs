//! Secrets the service makes for itself on first use and keeps in the database, so that every
//! instance sharing it has the same (the VERP tag's key).

use diesel::prelude::*;
use rand::RngCore;

use super::DbConnection;
use super::schema::service_keys;

/// The key called `name`, made (32 random bytes) the first time it is asked for. Two instances
/// asking at once get the same one: the insert keeps whichever came first.
pub fn service_key(conn: &mut DbConnection, name: &str) -> QueryResult<Vec<u8>> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let values = (
        service_keys::name.eq(name),
        service_keys::value.eq(hex::encode(fresh)),
    );
    crate::on_backend!(conn, |c| diesel::insert_into(service_keys::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    let stored: String = service_keys::table
        .find(name)
        .select(service_keys::value)
        .first(conn)?;
    Ok(hex::decode(&stored).unwrap_or_else(|_| stored.into_bytes()))
}
