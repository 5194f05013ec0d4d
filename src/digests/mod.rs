//! Digests for staff: what they type (`input`), the shared content rendered once per digest
//! (`content`), and the preview and test copy (`preview`). Used by the admin API and the CLI.

mod content;
mod input;
mod preview;

pub use content::{load_content, markdown_to_html};
pub use input::{parse_article, parse_digest, parse_time};
pub use preview::{PreviewFormat, TestSendError, preview, send_test};
