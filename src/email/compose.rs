//! Builds the message for one recipient: template, headers (Message-ID, List-Id, RFC 8058
//! List-Unsubscribe), multipart/alternative body, and the DKIM signature when configured.
//! It works on plain data ([`Letter`]): who the copy is for and the tokens its links carry.

use std::sync::Arc;

use anyhow::Context;
use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use super::templates::{RenderedEmail, SiteView, Templates};
use super::wire::{EncodedBody, Slot};
use crate::configuration::Settings;
use crate::domain::{DeliveryKind, SubscriberEmail, Token};

/// One reader's copy of a mail.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The queue's row: names the copy in its VERP return path. None for a preview or test.
    pub delivery_id: Option<i64>,
    pub kind: DeliveryKind,
    pub to: String,
    pub name: Option<String>,
    pub message_id: String,
    pub confirm_token: Option<Token>,
    pub unsubscribe_token: Option<Token>,
    /// A preview or test copy: its unsubscribe link leads to a page that says so.
    pub sample: bool,
}

/// An article as the digest templates show it.
#[derive(Debug, Clone, Serialize)]
pub struct ArticleView {
    pub title: String,
    pub url: String,
    pub summary: String,
    pub published: String,
    /// Empty: no picture.
    pub image_url: String,
    pub image_alt: String,
}

/// The parts of a digest that are the same for every recipient, rendered once.
#[derive(Debug, Clone, Serialize)]
pub struct DigestContent {
    pub subject: String,
    pub intro_html: String,
    pub intro_text: String,
    pub articles: Vec<ArticleView>,
    /// Its page in the public archive (`/archive/7-latest-research`), where the mail's "View in
    /// browser" link leads; None for a digest left out of the archive.
    pub archive_path: Option<String>,
}

impl DigestContent {
    /// A digest of one article, for trying the templates (mail and archive pages) at start-up.
    pub fn sample() -> DigestContent {
        DigestContent {
            subject: "Latest research".into(),
            intro_html: "<p>Two new <strong>studies</strong>.</p>".into(),
            intro_text: "Two new **studies**.".into(),
            articles: vec![ArticleView {
                title: "Prolotherapy after failed back surgery".into(),
                url: "https://clinic.example/prolotherapy".into(),
                summary: "91% better or not worse after 12 months.".into(),
                published: "2026-11-23".into(),
                image_url: "https://clinic.example/spine.jpg".into(),
                image_alt: "An X-ray of a lower spine".into(),
            }],
            archive_path: Some("/archive/1-latest-research".into()),
        }
    }
}

/// Everything needed to turn a delivery into a message; built once at start-up.
pub struct Composer {
    templates: Arc<Templates>,
    from: Mailbox,
    site: SiteView,
    base_url: String,
    list_id: String,
    /// The `mailto:` of List-Unsubscribe, only when someone reads that mailbox.
    unsubscribe_mailto: Option<String>,
    message_id_domain: String,
    dkim: Option<lettre::message::dkim::DkimConfig>,
    /// Tagged return paths and unsubscribe addresses, when `mail.bounce_address` is set.
    verp: Option<crate::bounces::Verp>,
    /// Rendered once at start-up; each mail only fills in its reader's parts.
    confirmation: PreparedMail,
    welcome: PreparedMail,
}

impl Composer {
    pub fn new(
        settings: &Settings,
        templates: Arc<Templates>,
        verp: Option<crate::bounces::Verp>,
    ) -> anyhow::Result<Composer> {
        let from: Mailbox = settings
            .mail
            .from
            .parse()
            .context("mail.from is not a mailbox")?;
        let message_id_domain = match settings.mail.message_id_domain.trim() {
            "" => from.email.domain().to_string(),
            domain => domain.to_string(),
        };
        let unsubscribe_mailto = Some(settings.mail.unsubscribe_mailto.trim())
            .filter(|mailto| !mailto.is_empty())
            .map(str::to_string);
        let site = SiteView::of(&settings.site);
        let confirmation = PreparedMail::render(
            &templates,
            &site,
            "confirmation",
            ConfirmationContext {
                confirm_url: CONFIRM_MARK,
                ttl_hours: settings.signup.token_ttl_hours,
            },
        )?;
        let welcome = PreparedMail::render(&templates, &site, "welcome", ())?;
        let composer = Composer {
            templates,
            confirmation,
            welcome,
            site,
            base_url: settings.base_url().to_string(),
            list_id: format!(
                "{} <newsletter.{}>",
                settings.site.name.replace(['<', '>', '"'], ""),
                message_id_domain
            ),
            from,
            unsubscribe_mailto,
            message_id_domain,
            dkim: super::dkim::load_dkim(&settings.mail.dkim)?,
            verp,
        };
        // A digest template that cannot render stops start-up, not a send.
        composer.prepare_digest(&DigestContent::sample())?;
        composer.staff_mail("staff@example.org", "review", ReviewMail::sample())?;
        Ok(composer)
    }

    /// The words of mail and pages in the site's language.
    pub fn texts(&self) -> &super::Texts {
        self.templates.texts()
    }

    /// The Message-ID of a delivery: the same for every attempt, so a receiver can tell a
    /// repeat from a new mail.
    pub fn message_id(&self, kind: DeliveryKind, delivery_id: i64) -> String {
        format!(
            "<{}.{delivery_id}@{}>",
            kind.as_str(),
            self.message_id_domain
        )
    }

    /// What comes before and after the delivery id in [`Composer::message_id`], for SQL that
    /// writes Message-IDs of ids it draws itself.
    pub fn message_id_around(&self, kind: DeliveryKind) -> (String, String) {
        (
            format!("<{}.", kind.as_str()),
            format!("@{}>", self.message_id_domain),
        )
    }

    /// A Message-ID for a mail that is no delivery of the queue (a test copy).
    pub fn one_off_message_id(&self, what: &str) -> String {
        format!(
            "<{what}.{}@{}>",
            &Token::generate().as_str()[..16],
            self.message_id_domain
        )
    }

    pub fn unsubscribe_url(&self, token: &str) -> String {
        format!("{}/unsubscribe?token={token}", self.base_url)
    }

    /// The unsubscribe link of a letter, if it has one: a sample's explains itself.
    fn letter_unsubscribe_url(&self, letter: &Letter) -> Option<String> {
        if letter.sample {
            return Some(format!("{}/unsubscribe?preview=true", self.base_url));
        }
        letter
            .unsubscribe_token
            .as_ref()
            .map(|t| self.unsubscribe_url(t.as_str()))
    }

    /// Renders the mail of a confirmation, welcome, digest or test delivery, as text (for
    /// previews).
    pub fn render(
        &self,
        letter: &Letter,
        digest: Option<&PreparedMail>,
    ) -> anyhow::Result<RenderedEmail> {
        let (prepared, reader) = self.reader_of(letter, digest)?;
        Ok(prepared.personalize(&reader.as_reader()))
    }

    /// The same mail as [`Composer::render`], its parts already encoded for the wire: what the
    /// worker sends (see [`super::wire`]).
    pub fn render_wire(
        &self,
        letter: &Letter,
        digest: Option<&PreparedMail>,
    ) -> anyhow::Result<WireMail> {
        let (prepared, reader) = self.reader_of(letter, digest)?;
        Ok(prepared.personalize_wire(&reader.as_reader()))
    }

    /// The prepared mail a letter is made from, and its reader's parts.
    fn reader_of<'a>(
        &'a self,
        letter: &'a Letter,
        digest: Option<&'a PreparedMail>,
    ) -> anyhow::Result<(&'a PreparedMail, OwnedReader<'a>)> {
        let unsubscribe_url = self
            .letter_unsubscribe_url(letter)
            .unwrap_or_else(|| format!("{}/subscribe", self.base_url));
        let mut confirm_url = String::new();
        let prepared = match letter.kind {
            DeliveryKind::Confirmation => {
                let token = letter
                    .confirm_token
                    .as_ref()
                    .context("confirmation without a token")?;
                confirm_url = format!(
                    "{}/subscriptions/confirm?token={}",
                    self.base_url,
                    token.as_str()
                );
                &self.confirmation
            }
            DeliveryKind::Welcome => &self.welcome,
            DeliveryKind::Digest | DeliveryKind::Test => {
                digest.context("digest mail without its digest")?
            }
        };
        let reader = OwnedReader {
            name: letter.name.as_deref(),
            unsubscribe_url,
            confirm_url,
        };
        Ok((prepared, reader))
    }

    /// Renders a digest's shared parts once (CSS inlined), so a send only fills in each
    /// reader's name and unsubscribe link.
    pub fn prepare_digest(&self, content: &DigestContent) -> anyhow::Result<PreparedMail> {
        let view_url = content
            .archive_path
            .as_ref()
            .map(|path| format!("{}{path}", self.base_url))
            .unwrap_or_default();
        let context = DigestContext {
            content,
            view_url: &view_url,
        };
        PreparedMail::render(&self.templates, &self.site, "digest", context)
    }

    /// The whole message, ready for SMTP: headers, both parts (already encoded, from
    /// [`Composer::render_wire`]), and the DKIM signature.
    pub fn build_wire(&self, letter: &Letter, mail: WireMail) -> anyhow::Result<Message> {
        let part = |content_type: ContentType, body: Vec<u8>| {
            SinglePart::builder()
                .header(content_type)
                .body(Body::dangerous_pre_encoded(
                    body,
                    ContentTransferEncoding::QuotedPrintable,
                ))
        };
        let message = self
            .headers(letter, mail.subject)?
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(ContentType::TEXT_PLAIN, mail.text))
                    .singlepart(part(ContentType::TEXT_HTML, mail.html)),
            )
            .context("building the message")?;
        Ok(self.signed(message))
    }

    /// A mail to a staff member (not a reader: no list headers, no unsubscribe link), such as
    /// "ready for review", rendered from `email_templates/<mail>/`.
    pub fn staff_mail(
        &self,
        to: &str,
        mail: &str,
        context: impl Serialize,
    ) -> anyhow::Result<Message> {
        let common = CommonContext {
            site_name: &self.site.name,
            site_url: &self.site.url,
            site: &self.site,
            name: None,
            unsubscribe_url: String::new(),
        };
        let rendered = self.templates.render_email(
            mail,
            With {
                common,
                extra: context,
            },
        )?;
        let to = SubscriberEmail::parse(to)
            .map_err(anyhow::Error::msg)?
            .to_address()
            .context("a staff address")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(rendered.subject)
            .message_id(Some(self.one_off_message_id(mail)))
            .date_now()
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .context("building the message")?;
        Ok(self.signed(message))
    }

    /// Who the message is from and to on the wire: with VERP, the envelope sender is the
    /// copy's tagged bounce address.
    pub fn envelope<'m>(
        &self,
        letter: &Letter,
        message: &'m Message,
    ) -> std::borrow::Cow<'m, lettre::address::Envelope> {
        use std::borrow::Cow;
        let tagged = self
            .verp
            .as_ref()
            .zip(letter.delivery_id)
            .and_then(|(verp, id)| {
                verp.address(crate::bounces::TagKind::Bounce, id)
                    .parse::<lettre::Address>()
                    .ok()
            });
        // Without a tag, the message's own envelope, borrowed as before: nothing more per mail.
        match tagged {
            Some(from) => {
                let to = message.envelope().to().to_vec();
                lettre::address::Envelope::new(Some(from), to)
                    .map(Cow::Owned)
                    .unwrap_or(Cow::Borrowed(message.envelope()))
            }
            None => Cow::Borrowed(message.envelope()),
        }
    }

    fn signed(&self, mut message: Message) -> Message {
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        message
    }

    /// Everything but the body: addresses, Message-ID, List-* and Precedence.
    fn headers(
        &self,
        letter: &Letter,
        subject: String,
    ) -> anyhow::Result<lettre::message::MessageBuilder> {
        let to = SubscriberEmail::from_stored(letter.to.clone())
            .to_address()
            .with_context(|| {
                format!("cannot send to {}", crate::domain::mask_address(&letter.to))
            })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(letter.name.clone(), to))
            .subject(subject)
            .message_id(Some(letter.message_id.clone()))
            .date_now();
        if let Some(https) = self.letter_unsubscribe_url(letter) {
            // With VERP, each copy's mailto: is its own tagged address, which
            // `newsletter inbound process` reads; otherwise the mailbox someone reads, if any.
            let tagged = self
                .verp
                .as_ref()
                .zip(letter.delivery_id)
                .map(|(verp, id)| verp.address(crate::bounces::TagKind::Unsubscribe, id));
            let list_unsubscribe = match tagged.as_ref().or(self.unsubscribe_mailto.as_ref()) {
                Some(mailto) => format!("<{https}>, <mailto:{mailto}?subject=unsubscribe>"),
                None => format!("<{https}>"),
            };
            builder = builder
                .raw_header(header("List-Id", self.list_id.clone()))
                .raw_header(header("List-Unsubscribe", list_unsubscribe))
                .raw_header(header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        if matches!(letter.kind, DeliveryKind::Digest) {
            builder = builder.raw_header(header("Precedence", "bulk".into()));
        }
        Ok(builder)
    }
}

/// "Ready for review" (or "made, but not sent"): a digest an automation made, for staff.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewMail {
    pub subject: String,
    pub feed_url: String,
    pub count: usize,
    pub titles: Vec<String>,
    pub review_url: String,
    /// True: a draft waits for review. False: it was to be sent, and `problem` says why not.
    pub ready: bool,
    pub problem: Option<String>,
}

impl ReviewMail {
    fn sample() -> ReviewMail {
        ReviewMail {
            subject: "Latest research: 7 December 2026".into(),
            feed_url: "https://clinic.example/feed.xml".into(),
            count: 1,
            titles: vec!["Prolotherapy after failed back surgery".into()],
            review_url: "https://news.example.org/admin/digests/1".into(),
            ready: true,
            problem: None,
        }
    }
}

/// A reader's copy with its parts encoded for the wire.
#[derive(Debug, Clone)]
pub struct WireMail {
    pub subject: String,
    pub text: Vec<u8>,
    pub html: Vec<u8>,
}

/// A reader's parts, owned where they are made for the letter.
struct OwnedReader<'a> {
    name: Option<&'a str>,
    unsubscribe_url: String,
    confirm_url: String,
}

impl OwnedReader<'_> {
    fn as_reader(&self) -> Reader<'_> {
        Reader {
            name: self.name,
            unsubscribe_url: &self.unsubscribe_url,
            confirm_url: &self.confirm_url,
        }
    }
}

const NAME_MARK: &str = "NLx7NAMEx7MARK";
const UNSUBSCRIBE_MARK: &str = "https://NLx7UNSUBSCRIBEx7MARK.invalid/";
const CONFIRM_MARK: &str = "https://NLx7CONFIRMx7MARK.invalid/";

/// One reader's parts of a mail.
struct Reader<'a> {
    name: Option<&'a str>,
    unsubscribe_url: &'a str,
    confirm_url: &'a str,
}

/// A mail rendered once (template and CSS inlining) with markers where each reader's name and
/// links go, in two variants because templates greet named and anonymous readers differently.
#[derive(Debug, Clone)]
pub struct PreparedMail {
    named: RenderedEmail,
    anonymous: RenderedEmail,
    /// The same two, encoded for the wire once, the reader's parts open.
    named_wire: WireParts,
    anonymous_wire: WireParts,
}

#[derive(Debug, Clone)]
struct WireParts {
    text: EncodedBody,
    html: EncodedBody,
}

const MARKS: &[(&str, Slot)] = &[
    (NAME_MARK, Slot::Name),
    (UNSUBSCRIBE_MARK, Slot::Unsubscribe),
    (CONFIRM_MARK, Slot::Confirm),
];

impl WireParts {
    fn of(mail: &RenderedEmail) -> WireParts {
        WireParts {
            text: EncodedBody::new(&mail.text, MARKS),
            html: EncodedBody::new(&mail.html, MARKS),
        }
    }
}

impl PreparedMail {
    fn render(
        templates: &Templates,
        site: &SiteView,
        mail: &str,
        extra: impl Serialize + Copy,
    ) -> anyhow::Result<PreparedMail> {
        let variant = |name: Option<&str>| {
            let common = CommonContext {
                site_name: &site.name,
                site_url: &site.url,
                site,
                name,
                unsubscribe_url: UNSUBSCRIBE_MARK.to_string(),
            };
            templates.render_email(mail, With { common, extra })
        };
        let (named, anonymous) = (variant(Some(NAME_MARK))?, variant(None)?);
        Ok(PreparedMail {
            named_wire: WireParts::of(&named),
            anonymous_wire: WireParts::of(&anonymous),
            named,
            anonymous,
        })
    }

    /// The variant for this reader (named or not) and what fills its marks.
    fn variant<'r>(&self, reader: &Reader<'r>) -> (&RenderedEmail, &WireParts, Fills<'r>) {
        let (template, wire) = match reader.name {
            Some(_) => (&self.named, &self.named_wire),
            None => (&self.anonymous, &self.anonymous_wire),
        };
        (template, wire, Fills::of(reader))
    }

    /// One reader's copy for the wire: as [`PreparedMail::personalize`], encoded.
    fn personalize_wire(&self, reader: &Reader<'_>) -> WireMail {
        let (template, wire, fills) = self.variant(reader);
        WireMail {
            subject: template.subject.clone(),
            text: wire.text.fill(|slot| fills.text(slot)),
            html: wire.html.fill(|slot| fills.html(slot)),
        }
    }

    /// One reader's copy: name escaped for HTML, links escaped for attributes.
    fn personalize(&self, reader: &Reader<'_>) -> RenderedEmail {
        let (template, _, fills) = self.variant(reader);
        let fill = |body: &str, html: bool| {
            MARKS.iter().fold(body.to_string(), |body, (mark, slot)| {
                body.replace(
                    mark,
                    if html {
                        fills.html(*slot)
                    } else {
                        fills.text(*slot)
                    },
                )
            })
        };
        RenderedEmail {
            subject: template.subject.clone(),
            text: fill(&template.text, false),
            html: fill(&template.html, true),
        }
    }
}

/// What a reader's copy puts at each mark: as it is in the text, escaped in the HTML (the name
/// as text, links as attribute values).
struct Fills<'a> {
    name: &'a str,
    unsubscribe: &'a str,
    confirm: &'a str,
    html_name: std::borrow::Cow<'a, str>,
    html_unsubscribe: std::borrow::Cow<'a, str>,
    html_confirm: std::borrow::Cow<'a, str>,
}

impl<'a> Fills<'a> {
    fn of(reader: &Reader<'a>) -> Fills<'a> {
        let name = reader.name.unwrap_or("");
        Fills {
            name,
            unsubscribe: reader.unsubscribe_url,
            confirm: reader.confirm_url,
            html_name: html_escape::encode_text(name),
            html_unsubscribe: html_escape::encode_double_quoted_attribute(reader.unsubscribe_url),
            html_confirm: html_escape::encode_double_quoted_attribute(reader.confirm_url),
        }
    }

    fn text(&self, slot: Slot) -> &str {
        match slot {
            Slot::Name => self.name,
            Slot::Unsubscribe => self.unsubscribe,
            Slot::Confirm => self.confirm,
        }
    }

    fn html(&self, slot: Slot) -> &str {
        match slot {
            Slot::Name => &self.html_name,
            Slot::Unsubscribe => &self.html_unsubscribe,
            Slot::Confirm => &self.html_confirm,
        }
    }
}

#[derive(Serialize)]
struct CommonContext<'a> {
    site_name: &'a str,
    site_url: &'a str,
    site: &'a SiteView,
    name: Option<&'a str>,
    unsubscribe_url: String,
}

/// A digest's shared parts and the link to its archive page ("View in browser"; empty when it
/// has none).
#[derive(Serialize, Clone, Copy)]
struct DigestContext<'a> {
    #[serde(flatten)]
    content: &'a DigestContent,
    view_url: &'a str,
}

#[derive(Serialize, Clone, Copy)]
struct ConfirmationContext {
    confirm_url: &'static str,
    ttl_hours: u32,
}

/// The common context plus what one kind of mail adds.
#[derive(Serialize)]
struct With<'a, T: Serialize> {
    #[serde(flatten)]
    common: CommonContext<'a>,
    #[serde(flatten)]
    extra: T,
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}
