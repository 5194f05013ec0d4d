//! Digests for staff: what they type (`input`), the shared content rendered once per digest
//! (`content`), and the preview and test copy (`preview`). Used by the admin API and the CLI.

mod content;
mod input;
mod preview;

pub use content::{assemble, load_content, markdown_to_html};
pub use input::{parse_article, parse_digest, parse_schedule_time, parse_time};
pub use preview::{PreviewFormat, TestSendError, preview, send_test};

/// A digest's page in the public archive: its id, then its subject as words of a URL
/// (`/archive/7-latest-research`). The id alone finds it; the words are for people.
pub fn archive_path(id: i64, subject: &str) -> String {
    format!("/archive/{id}-{}", archive_slug(subject))
}

/// The subject as a URL's words: ASCII, lower case, hyphens (`Neue Studien für Sie` →
/// `neue-studien-fur-sie`), at most 60 characters.
pub fn archive_slug(subject: &str) -> String {
    let slug = slug::slugify(subject);
    let mut cut = slug.as_str();
    if cut.len() > 60 {
        cut = cut[..60].trim_end_matches('-');
        if let Some(end) = cut.rfind('-').filter(|&end| end > 30) {
            cut = &cut[..end];
        }
    }
    match cut {
        "" => "digest".to_string(),
        words => words.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_path_names_the_digest_in_plain_words() {
        assert_eq!(
            archive_path(7, "Latest research: 7 December 2026"),
            "/archive/7-latest-research-7-december-2026"
        );
        assert_eq!(archive_slug("Neue Studien für Sie"), "neue-studien-fur-sie");
        assert_eq!(archive_slug("!!!"), "digest");
        let long = archive_slug(&"prolotherapy after failed back surgery ".repeat(4));
        assert!(long.len() <= 60 && !long.ends_with('-'), "{long}");
    }
}
