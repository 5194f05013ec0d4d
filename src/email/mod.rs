//! Rendering and sending mail. `compose` turns a claimed delivery into the bytes of a
//! multipart/alternative message; `Mailer` hands those bytes to SMTP or the outbox folder.

mod compose;
mod mailer;
mod templates;

pub use compose::{ArticleView, Composer, DigestContent, PreparedMail};
pub use mailer::{MailSession, Mailer, SendError};
pub use templates::{RenderedEmail, Templates};
