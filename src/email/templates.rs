//! Every template the service renders, compiled into the binary: mail from `email_templates/`
//! (one folder per mail: subject, text body, HTML body over a shared layout) and the visitor
//! pages from `templates/`. Files ending in `.html` are auto-escaped. `templates.dir` replaces
//! them file by file; `newsletter templates export DIR` writes the built-ins to start from.

use std::sync::Arc;

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;

use super::texts::Texts;

macro_rules! embedded {
    ($($name:literal => $path:literal),+ $(,)?) => {
        &[$(Builtin {
            name: $name,
            path: $path,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)),
        }),+]
    };
}

/// A template compiled into the binary: its name to the engine, its path in the repository
/// (and under `templates.dir`), its text.
pub struct Builtin {
    pub name: &'static str,
    pub path: &'static str,
    pub source: &'static str,
}

impl Builtin {
    /// Where this template came from, for messages: the file of `templates.dir` that replaced
    /// it, or its path in the repository.
    fn file(&self, custom: Option<&std::path::Path>) -> String {
        match custom {
            Some(path) => path.display().to_string(),
            None => format!("{} (built in)", self.path),
        }
    }
}

pub const TEMPLATES: &[Builtin] = embedded! {
    "base.html" => "email_templates/base.html",
    "base.txt" => "email_templates/base.txt",
    "confirmation/subject.txt" => "email_templates/confirmation/subject.txt",
    "confirmation/body.txt" => "email_templates/confirmation/body.txt",
    "confirmation/body.html" => "email_templates/confirmation/body.html",
    "welcome/subject.txt" => "email_templates/welcome/subject.txt",
    "welcome/body.txt" => "email_templates/welcome/body.txt",
    "welcome/body.html" => "email_templates/welcome/body.html",
    "digest/subject.txt" => "email_templates/digest/subject.txt",
    "digest/body.txt" => "email_templates/digest/body.txt",
    "digest/body.html" => "email_templates/digest/body.html",
    "review/subject.txt" => "email_templates/review/subject.txt",
    "review/body.txt" => "email_templates/review/body.txt",
    "review/body.html" => "email_templates/review/body.html",
    "pages/layout.html" => "templates/layout.html",
    "pages/subscribe.html" => "templates/subscribe.html",
    "pages/message.html" => "templates/message.html",
    "pages/unsubscribe.html" => "templates/unsubscribe.html",
    "pages/confirm.html" => "templates/confirm.html",
    "pages/archive.html" => "templates/archive.html",
    "pages/archive_digest.html" => "templates/archive_digest.html",
    "pages/archive_content.html" => "templates/archive_content.html",
    "pages/admin/layout.html" => "templates/admin/layout.html",
    "pages/admin/login.html" => "templates/admin/login.html",
    "pages/admin/login_code.html" => "templates/admin/login_code.html",
    "pages/admin/setup.html" => "templates/admin/setup.html",
    "pages/admin/dashboard.html" => "templates/admin/dashboard.html",
    "pages/admin/articles.html" => "templates/admin/articles.html",
    "pages/admin/article.html" => "templates/admin/article.html",
    "pages/admin/digests.html" => "templates/admin/digests.html",
    "pages/admin/compose.html" => "templates/admin/compose.html",
    "pages/admin/digest.html" => "templates/admin/digest.html",
    "pages/admin/confirm_send.html" => "templates/admin/confirm_send.html",
    "pages/admin/confirm_cancel.html" => "templates/admin/confirm_cancel.html",
    "pages/admin/subscribers.html" => "templates/admin/subscribers.html",
    "pages/admin/subscriber.html" => "templates/admin/subscriber.html",
    "pages/admin/erase.html" => "templates/admin/erase.html",
    "pages/admin/staff.html" => "templates/admin/staff.html",
    "pages/admin/activity.html" => "templates/admin/activity.html",
    "pages/admin/account.html" => "templates/admin/account.html",
    "pages/admin/automations.html" => "templates/admin/automations.html",
};

/// What every page and mail shows of the site: its name, a way back to it, and the footer the
/// law wants (who sends this, from where, and how they treat your data).
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub name: String,
    pub url: String,
    /// On one line: lines given with newlines are joined with ", ".
    pub postal_address: String,
    pub privacy_url: String,
    pub logo_url: String,
    /// Checked at start-up to be `#rgb` or `#rrggbb`, so it can go into CSS as it is.
    pub accent_color: String,
}

impl SiteView {
    pub fn of(site: &crate::configuration::SiteSettings) -> SiteView {
        let postal_address = site
            .postal_address
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        SiteView {
            name: site.name.clone(),
            url: site.url.clone(),
            postal_address,
            privacy_url: site.privacy_url.clone(),
            logo_url: site.logo_url.clone(),
            accent_color: site.accent_color.clone(),
        }
    }
}

/// Writes the built-in templates under `dir`, at their paths in the repository; returns how
/// many. Files already there are left alone, so an export never overwrites someone's work.
pub fn export_builtins(dir: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    let (mut written, mut kept) = (0, 0);
    let templates = TEMPLATES.iter().map(|b| (b.path, b.source));
    let translations = super::texts::TRANSLATIONS
        .iter()
        .map(|t| (t.path, t.source));
    for (path, source) in templates.chain(translations) {
        let path = dir.join(path);
        if path.exists() {
            kept += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, source).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    Ok((written, kept))
}

/// `{{ t("key", name=value) }}`: the text of `key` in the site's language, its `{name}`s
/// filled. In HTML the text and the values are escaped, but a value marked safe (`|safe`) goes
/// in as it is, so a template can put a link inside a translated sentence. `{{ d | date }}`
/// writes an ISO date (`2026-12-07`) as the language does; `lang` is the language's code.
fn add_texts(env: &mut Environment<'static>, texts: &Arc<Texts>) {
    use minijinja::{Error, ErrorKind, State, Value, value::Kwargs};
    let words = texts.clone();
    env.add_function(
        "t",
        move |state: &State, key: &str, kwargs: Kwargs| -> Result<Value, Error> {
            let text = words.get(key).ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedError,
                    format!("there is no text {key:?} in the translations"),
                )
            })?;
            let html = !matches!(state.auto_escape(), minijinja::AutoEscape::None);
            let escape = |text: &str| html_escape::encode_safe(text).into_owned();
            // In HTML the translation's own words are escaped, and so is every value that is
            // not marked safe.
            let source = if html { escape(text) } else { text.to_string() };
            let mut missing = None;
            let filled = super::texts::fill(&source, |name| {
                match kwargs.get::<Option<Value>>(name).ok().flatten() {
                    Some(value) if html && !value.is_safe() => Some(escape(&value.to_string())),
                    Some(value) => Some(value.to_string()),
                    None => {
                        missing.get_or_insert_with(|| name.to_string());
                        None
                    }
                }
            });
            if let Some(name) = missing {
                return Err(Error::new(
                    ErrorKind::UndefinedError,
                    format!("the text {key:?} names {{{name}}}, which this template does not give"),
                ));
            }
            Ok(if html {
                Value::from_safe_string(filled)
            } else {
                Value::from(filled)
            })
        },
    );
    let dates = texts.clone();
    env.add_filter("date", move |value: String| -> String {
        match chrono::NaiveDate::parse_from_str(value.get(..10).unwrap_or(&value), "%Y-%m-%d") {
            Ok(date) => dates.date(date),
            Err(_) => value,
        }
    });
    env.add_global("lang", texts.language().to_string());
}

/// A mail rendered for one recipient.
#[derive(Debug, Clone)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
    texts: Arc<Texts>,
    /// The templates replaced from `templates.dir`, by name, with their files.
    custom_files: std::collections::HashMap<&'static str, std::path::PathBuf>,
}

impl Templates {
    /// The built-in templates, in English.
    pub fn load() -> anyhow::Result<Templates> {
        Templates::load_from(None, "en")
    }

    /// The built-ins, each replaced by the file of the same path under `dir` when there is
    /// one, speaking `language`. A template that does not compile stops start-up with its file
    /// and line.
    pub fn load_from(dir: Option<&std::path::Path>, language: &str) -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .build()
                .context("template syntax")?,
        );
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        if let Some(dir) = dir {
            anyhow::ensure!(
                dir.is_dir(),
                "templates.dir {} is not a folder (make one with `newsletter templates export {}`)",
                dir.display(),
                dir.display()
            );
        }
        let texts = Arc::new(Texts::load(language, dir)?);
        add_texts(&mut env, &texts);
        let mut custom_files = std::collections::HashMap::new();
        for builtin in TEMPLATES {
            let custom = dir
                .map(|dir| dir.join(builtin.path))
                .filter(|p| p.is_file());
            let added = match &custom {
                Some(path) => {
                    let source = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the template {}", path.display()))?;
                    env.add_template_owned(builtin.name, source)
                }
                None => env.add_template(builtin.name, builtin.source),
            };
            if let Err(e) = added {
                let file = builtin.file(custom.as_deref());
                let line = e.line().map(|l| format!(", line {l}")).unwrap_or_default();
                anyhow::bail!(
                    "the template {file}{line} is broken: {}",
                    e.detail().unwrap_or(&e.to_string())
                );
            }
            if let Some(path) = custom {
                tracing::info!(template = %path.display(), "using a template of templates.dir");
                custom_files.insert(builtin.name, path);
            }
        }
        Ok(Templates {
            env,
            texts,
            custom_files,
        })
    }

    /// The words of pages and mail in the site's language.
    pub fn texts(&self) -> &Texts {
        &self.texts
    }

    /// Renders `email_templates/<mail>/` for one recipient, with the HTML's CSS inlined.
    pub fn render_email(
        &self,
        mail: &str,
        context: impl Serialize,
    ) -> anyhow::Result<RenderedEmail> {
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        let subject = self.render(&format!("{mail}/subject.txt"), &context)?;
        let text = self.render(&format!("{mail}/body.txt"), &context)?;
        let html = self.render(&format!("{mail}/body.html"), &context)?;
        let html =
            css_inline::inline(&html).with_context(|| format!("inlining the CSS of {mail}"))?;
        Ok(RenderedEmail {
            subject: subject.trim().replace(['\r', '\n'], " "),
            text,
            html,
        })
    }

    /// Renders a visitor page from `templates/`.
    pub fn render_page(&self, page: &str, context: impl Serialize) -> anyhow::Result<String> {
        self.render(
            &format!("pages/{page}.html"),
            &minijinja::Value::from(minijinja::value::Serde(&context)),
        )
    }

    fn render(&self, name: &str, context: &minijinja::Value) -> anyhow::Result<String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .with_context(|| format!("rendering the template {}", self.file_of(name)))
    }

    /// Where a template came from, for error messages: its file under `templates.dir`, or its
    /// path in the repository.
    fn file_of(&self, name: &str) -> String {
        let custom = self.custom_files.get(name).map(|p| p.as_path());
        match TEMPLATES.iter().find(|b| b.name == name) {
            Some(builtin) => builtin.file(custom),
            None => name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_translated_sentence_escapes_its_words_and_values_but_not_safe_markup() {
        let mut env = Environment::new();
        let texts = Arc::new(Texts::load("en", None).unwrap());
        add_texts(&mut env, &texts);
        env.add_template_owned(
            "probe.html",
            r#"{{ t("confirm.asked", email=("<strong>" | safe) ~ email ~ ("</strong>" | safe)) }}|{{ t("mail.hello_name", name=email) }}"#.to_string(),
        )
        .unwrap();
        let html = env
            .get_template("probe.html")
            .unwrap()
            .render(minijinja::context! { email => "a<b>@example.org" })
            .unwrap();
        assert_eq!(
            html,
            "Someone, probably you, signed up <strong>a&lt;b&gt;@example.org</strong> for our \
             newsletter. Press the button to confirm.|Hello a&lt;b&gt;@example.org,"
        );
    }
}
