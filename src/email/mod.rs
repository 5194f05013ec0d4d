//! Rendering and sending mail. `compose` turns a [`Letter`] into the bytes of a
//! multipart/alternative message (`dkim` signs it); `Mailer` hands those bytes to SMTP or the
//! outbox folder.

mod compose;
mod dkim;
mod mailer;
mod templates;
mod texts;
mod wire;

pub use compose::{
    ArticleView, Composer, DigestContent, Letter, PreparedMail, ReviewMail, WireMail,
};
pub use mailer::{MailSession, Mailer, SendError};
pub use templates::{RenderedEmail, SiteView, Templates, export_builtins};
pub use texts::{TRANSLATIONS, Texts};
