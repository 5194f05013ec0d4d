//! Digests: what staff compose from articles and the worker sends to every confirmed subscriber.

use crate::db::Db;
use crate::email::DigestContent;

/// The parts of a digest that are the same for everyone, rendered once.
pub async fn load_content(_db: &Db, digest_id: i64) -> anyhow::Result<DigestContent> {
    anyhow::bail!("digest {digest_id} cannot be rendered yet")
}
