//! (filled in by the digest work)
