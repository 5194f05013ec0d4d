//! Settings: the embedded `config/default.toml`, then the file named by `--config` (or
//! `config/default.toml` in the working directory), then `NEWSLETTER__SECTION__KEY` variables.
//! Everything is checked here, once, so a bad key stops start-up with its name.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

const EMBEDDED_DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub site: SiteSettings,
    pub database: DatabaseSettings,
    pub mail: MailSettings,
    pub delivery: DeliverySettings,
    pub signup: SignupSettings,
    pub feeds: FeedsSettings,
    pub admin: AdminSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// A staff session ends after this many minutes without a page view.
    pub session_idle_minutes: u64,
    /// Sign-in attempts per address, and per client address, per 15 minutes.
    pub login_attempts_per_15_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsSettings {
    /// Fetch feeds from loopback, private and link-local addresses too (an intranet feed).
    pub allow_private_networks: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub base_url: String,
    pub max_body_bytes: usize,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` / `Forwarded` are believed.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// Replaced by `trusted_proxies`; `true` still means a proxy on this machine, with a warning.
    pub trust_forwarded_for: Option<bool>,
}

/// A list of networks, each `10.0.0.0/8` or a single address `192.0.2.1`.
fn networks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let list = Vec::<String>::deserialize(deserializer)?;
    list.iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{item:?} is not an address or a network like 10.0.0.0/8"
                    ))
                })
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// PostgreSQL cancels a statement that runs longer (0: never). Bulk statements that may
    /// rightly take long (queuing a digest for millions) lift it for themselves.
    pub statement_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Outbox,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: Transport,
    pub from: String,
    pub message_id_domain: String,
    pub unsubscribe_mailto: String,
    pub outbox: OutboxSettings,
    pub smtp: SmtpSettings,
    pub dkim: DkimSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub private_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    pub concurrency: usize,
    pub rate_per_second: u32,
    pub max_attempts: i32,
    pub retry_base_seconds: u64,
    pub lease_seconds: u64,
    pub poll_interval_ms: u64,
    pub batch_size: i64,
    pub pause_after_failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupSettings {
    pub token_ttl_hours: u32,
    pub rate_limit_per_minute: u32,
    pub welcome_email: bool,
    pub max_links_per_hour: i64,
}

impl Settings {
    /// Reads the settings. `path` is the `--config` file; without it `config/default.toml` in the
    /// working directory is read when present.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            EMBEDDED_DEFAULTS,
            config::FileFormat::Toml,
        ));
        match path {
            Some(path) => {
                if !path.is_file() {
                    bail!("configuration file {} does not exist", path.display());
                }
                builder = builder.add_source(config::File::from(path));
            }
            None => {
                builder =
                    builder.add_source(config::File::with_name("config/default").required(false));
            }
        }
        let mut settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("NEWSLETTER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.trusted_proxies"),
            )
            .build()
            .context("reading the configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        settings.validate()?;
        settings.retire_old_keys();
        Ok(settings)
    }

    /// Keys of earlier versions keep working for existing deployments, with a warning that
    /// names what replaced them.
    fn retire_old_keys(&mut self) {
        match self.server.trust_forwarded_for.take() {
            Some(true) if self.server.trusted_proxies.is_empty() => {
                self.server.trusted_proxies = crate::routes::loopback_proxies();
                tracing::warn!(
                    "server.trust_forwarded_for is replaced by server.trusted_proxies; taking it \
                     as trusted_proxies = [\"127.0.0.0/8\", \"::1/128\"] (a proxy on this machine). \
                     Set server.trusted_proxies to your proxies' addresses instead."
                );
            }
            Some(_) => tracing::warn!(
                "server.trust_forwarded_for is replaced by server.trusted_proxies and has no \
                 effect here; remove it"
            ),
            None => {}
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let base = url::Url::parse(&self.server.base_url)
            .with_context(|| format!("server.base_url {:?} is not a URL", self.server.base_url))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("server.base_url must start with http:// or https://");
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            bail!(
                "mail.from {:?} is not a mailbox like `Name <address@example.org>`",
                self.mail.from
            );
        }
        if !self.mail.unsubscribe_mailto.is_empty()
            && self
                .mail
                .unsubscribe_mailto
                .parse::<lettre::Address>()
                .is_err()
        {
            bail!("mail.unsubscribe_mailto is not an email address");
        }
        if self.delivery.concurrency == 0 {
            bail!("delivery.concurrency must be at least 1");
        }
        if self.delivery.max_attempts < 1 {
            bail!("delivery.max_attempts must be at least 1");
        }
        if self.delivery.batch_size < 1 {
            bail!("delivery.batch_size must be at least 1");
        }
        if self.signup.token_ttl_hours == 0 {
            bail!("signup.token_ttl_hours must be at least 1");
        }
        if self.signup.rate_limit_per_minute == 0 {
            bail!("signup.rate_limit_per_minute must be at least 1");
        }
        if self.admin.session_idle_minutes == 0 {
            bail!("admin.session_idle_minutes must be at least 1");
        }
        if self.admin.login_attempts_per_15_minutes == 0 {
            bail!("admin.login_attempts_per_15_minutes must be at least 1");
        }
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        let dkim = &self.mail.dkim;
        let set = [
            dkim.domain.is_some(),
            dkim.selector.is_some(),
            dkim.private_key_file.is_some(),
        ];
        if set.iter().any(|s| *s) && !set.iter().all(|s| *s) {
            bail!("mail.dkim needs all of domain, selector and private_key_file, or none of them");
        }
        Ok(())
    }

    /// The public base URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.server.base_url.trim_end_matches('/')
    }
}
