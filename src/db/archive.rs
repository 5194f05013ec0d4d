//! The public archive: the digests that began going out, unless staff left them out. Nothing
//! here reads who got them.

use diesel::prelude::*;

use super::DbConnection;
use super::digests::Digest;
use super::schema::digests;

/// Archived digests, newest first, `per_page` at a time from page 1, and how many there are.
pub fn archived_digests(
    conn: &mut DbConnection,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Digest>, i64)> {
    let listed = digests::table
        .filter(in_archive())
        .order((digests::started_at.desc(), digests::id.desc()))
        .limit(per_page)
        .offset((page - 1) * per_page)
        .select(Digest::as_select())
        .load(conn)?;
    let total = digests::table
        .filter(in_archive())
        .count()
        .get_result(conn)?;
    Ok((listed, total))
}

/// One digest of the archive; None for a draft, a scheduled digest or one left out.
pub fn archived_digest(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Digest>> {
    digests::table
        .find(id)
        .filter(in_archive())
        .select(Digest::as_select())
        .first(conn)
        .optional()
}

type InArchive = diesel::dsl::And<
    diesel::dsl::Eq<digests::archive, bool>,
    diesel::dsl::IsNotNull<digests::started_at>,
>;

/// In the archive: not left out, and it began going out.
fn in_archive() -> InArchive {
    digests::archive
        .eq(true)
        .and(digests::started_at.is_not_null())
}
