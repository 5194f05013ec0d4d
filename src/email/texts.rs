//! The words of the public pages and of readers' mail, in the site's language
//! (`site.language`), from one TOML file per language (`translations/en.toml`,
//! `translations/de.toml`) that a translator edits without Rust. A file of the same name under
//! `templates.dir/translations/` replaces the values it gives, or adds a language of its own;
//! anything missing falls back to English. Templates ask with `{{ t("confirm.title") }}`, Rust
//! code with [`Texts::text`]; `{name}` in a text marks where a value goes.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};

/// A translation compiled into the binary: its language, its path in the repository (and under
/// `templates.dir`), its text.
pub struct BuiltinTexts {
    pub language: &'static str,
    pub path: &'static str,
    pub source: &'static str,
}

pub const TRANSLATIONS: &[BuiltinTexts] = &[
    BuiltinTexts {
        language: "en",
        path: "translations/en.toml",
        source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/translations/en.toml")),
    },
    BuiltinTexts {
        language: "de",
        path: "translations/de.toml",
        source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/translations/de.toml")),
    },
];

#[derive(Debug, Clone)]
pub struct Texts {
    language: String,
    words: HashMap<String, String>,
    locale: chrono::Locale,
}

impl Texts {
    /// English, then the built-in file of `language`, then `dir/translations/<language>.toml`.
    /// An unknown key in a file of `templates.dir` (a typo) stops start-up naming it.
    pub fn load(language: &str, dir: Option<&Path>) -> anyhow::Result<Texts> {
        let language = language.trim();
        let tag_ok =
            (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_lowercase());
        if !tag_ok {
            bail!("site.language {language:?} must be a language code like en or de");
        }
        let english = TRANSLATIONS
            .iter()
            .find(|t| t.language == "en")
            .context("the English texts are built in")?;
        let mut words = parse(english.source, english.path)?;
        let builtin = TRANSLATIONS.iter().find(|t| t.language == language);
        if let Some(builtin) = builtin.filter(|b| b.language != "en") {
            words.extend(parse(builtin.source, builtin.path)?);
        }
        let custom = dir
            .map(|dir| dir.join("translations").join(format!("{language}.toml")))
            .filter(|path| path.is_file());
        match (&custom, builtin) {
            (Some(path), _) => {
                let source = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let file = path.display().to_string();
                for (key, value) in parse(&source, &file)? {
                    if !words.contains_key(&key) {
                        bail!(
                            "{file}: there is no text {key:?} (see translations/en.toml for the keys)"
                        );
                    }
                    words.insert(key, value);
                }
            }
            (None, Some(_)) => {}
            (None, None) => bail!(
                "site.language {language:?} has no translation: built in are {}; for another, put \
                 translations/{language}.toml (a copy of translations/en.toml, from `newsletter \
                 templates export DIR`) in templates.dir",
                TRANSLATIONS
                    .iter()
                    .map(|t| t.language)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
        Ok(Texts {
            locale: locale_of(language),
            language: language.to_string(),
            words,
        })
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.words.get(key).map(String::as_str)
    }

    /// The text of `key` with its `{name}`s filled from `args` (as they are: for a page, the
    /// template escapes the whole).
    pub fn text(&self, key: &str, args: &[(&str, &str)]) -> String {
        let Some(text) = self.get(key) else {
            tracing::error!(key, "a text is missing from the translations");
            return key.to_string();
        };
        fill(text, |name| {
            args.iter()
                .find(|(wanted, _)| *wanted == name)
                .map(|(_, value)| value.to_string())
        })
    }

    /// A date as this language writes it ("7 December 2026", "7. Dezember 2026").
    pub fn date(&self, date: chrono::NaiveDate) -> String {
        let format = self.get("language.date").unwrap_or("%Y-%m-%d");
        date.format_localized(format, self.locale).to_string()
    }
}

/// The texts of a TOML file as `section.key` → text.
fn parse(source: &str, file: &str) -> anyhow::Result<HashMap<String, String>> {
    let table: toml::Table =
        toml::from_str(source).with_context(|| format!("{file} is not valid TOML"))?;
    let mut words = HashMap::new();
    for (section, values) in table {
        let toml::Value::Table(values) = values else {
            bail!("{file}: {section} must be a [section] of texts");
        };
        for (key, value) in values {
            let toml::Value::String(text) = value else {
                bail!("{file}: {section}.{key} must be a text in quotes");
            };
            words.insert(format!("{section}.{key}"), text);
        }
    }
    Ok(words)
}

/// Replaces each `{name}` in `text` with `value(name)`; an unknown name stays as written.
pub fn fill(text: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                let name = &after[..close];
                match value(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The locale for month and day names: `de` → `de_DE`; English otherwise.
fn locale_of(language: &str) -> chrono::Locale {
    let region = match language {
        "en" => "US".to_string(),
        other => other.to_ascii_uppercase(),
    };
    chrono::Locale::try_from(format!("{language}_{region}").as_str())
        .unwrap_or(chrono::Locale::en_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        fill(text, |name| {
            names.push(name.to_string());
            None
        });
        names.sort();
        names
    }

    #[test]
    fn every_language_has_every_text_with_the_same_placeholders() {
        let english = parse(TRANSLATIONS[0].source, "en").unwrap();
        for translation in &TRANSLATIONS[1..] {
            let words = parse(translation.source, translation.path).unwrap();
            let mut missing: Vec<_> = english.keys().filter(|k| !words.contains_key(*k)).collect();
            let mut extra: Vec<_> = words.keys().filter(|k| !english.contains_key(*k)).collect();
            missing.sort();
            extra.sort();
            assert!(missing.is_empty(), "{} lacks {missing:?}", translation.path);
            assert!(
                extra.is_empty(),
                "{} has unknown {extra:?}",
                translation.path
            );
            for (key, text) in &words {
                let theirs = placeholders(text);
                let ours = placeholders(&english[key]);
                // A translation may leave out the English detail of a refusal, nothing else.
                assert!(
                    theirs.iter().all(|name| ours.contains(name)),
                    "{}: {key} uses {theirs:?}, English {ours:?}",
                    translation.path
                );
                if !ours.contains(&"detail".to_string()) {
                    assert_eq!(theirs, ours, "{}: {key}", translation.path);
                }
            }
        }
    }

    #[test]
    fn placeholders_are_filled_and_other_braces_stay() {
        let filled = fill("Hello {name}, {unknown} and {not a name}", |name| {
            (name == "name").then(|| "Ann".to_string())
        });
        assert_eq!(filled, "Hello Ann, {unknown} and {not a name}");
    }

    #[test]
    fn german_texts_and_dates_are_german_and_a_typo_in_a_custom_file_is_named() {
        let german = Texts::load("de", None).unwrap();
        assert_eq!(german.text("unsubscribe.button", &[]), "Abmelden");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        assert_eq!(german.date(date), "7. Dezember 2026");
        assert_eq!(
            Texts::load("en", None).unwrap().date(date),
            "7 December 2026"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("translations")).unwrap();
        let file = dir.path().join("translations/de.toml");
        std::fs::write(&file, "[unsubscribe]\nbutton = \"Austragen\"\n").unwrap();
        let custom = Texts::load("de", Some(dir.path())).unwrap();
        assert_eq!(custom.text("unsubscribe.button", &[]), "Austragen");
        assert_eq!(custom.text("unsubscribe.title", &[]), "Abmelden");
        std::fs::write(&file, "[unsubscribe]\nbuton = \"Austragen\"\n").unwrap();
        let typo = Texts::load("de", Some(dir.path())).unwrap_err().to_string();
        assert!(typo.contains("unsubscribe.buton"), "{typo}");

        let french = Texts::load("fr", None).unwrap_err().to_string();
        assert!(french.contains("no translation"), "{french}");
        std::fs::write(
            dir.path().join("translations/fr.toml"),
            "[unsubscribe]\nbutton = \"Se désabonner\"\n",
        )
        .unwrap();
        let french = Texts::load("fr", Some(dir.path())).unwrap();
        assert_eq!(french.text("unsubscribe.button", &[]), "Se désabonner");
        assert_eq!(
            french.text("unsubscribe.title", &[]),
            "Unsubscribe",
            "English where missing"
        );
        assert!(Texts::load("Deutsch", None).is_err());
    }
}
