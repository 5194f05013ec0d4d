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
    pub templates: TemplatesSettings,
    pub bounces: BouncesSettings,
    pub inbound: InboundSettings,
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// When set, a scrape must carry `Authorization: Bearer <token>`.
    pub token: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSettings {
    /// Where `serve` takes bounces by SMTP (`127.0.0.1:2525`); empty: no listener.
    pub listen: String,
    pub max_message_bytes: usize,
    /// Messages per client address per minute.
    pub messages_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BouncesSettings {
    /// This many soft bounces of one person within `soft_window_days` make a hard one.
    pub soft_limit: u32,
    pub soft_window_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesSettings {
    /// A folder laid out as the repository's `email_templates/` and `templates/`; a file there
    /// replaces the built-in of the same path. Empty: the built-ins.
    pub dir: String,
}

impl TemplatesSettings {
    pub fn dir(&self) -> Option<&Path> {
        Some(self.dir.trim())
            .filter(|d| !d.is_empty())
            .map(Path::new)
    }
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
    /// Empty in the file: the address actually served (see [`ServerSettings::serve_on`]).
    pub base_url: String,
    pub max_body_bytes: usize,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` / `Forwarded` are believed.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// Replaced by `trusted_proxies`; `true` still means a proxy on this machine, with a warning.
    pub trust_forwarded_for: Option<bool>,
}

fn is_hex_color(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

impl ServerSettings {
    /// Without a `base_url` of its own, the links in pages and mail point to where the service
    /// is served: `http://host:port`, with the port actually bound (`port = 0` picks one).
    pub fn serve_on(&mut self, port: u16) {
        if self.base_url.trim().is_empty() || self.base_url_is_served_address() {
            self.base_url = self.served_url(port);
        }
    }

    /// Whether `base_url` is only where the service is served, not a public address set.
    pub fn base_url_is_served_address(&self) -> bool {
        self.base_url == self.served_url(self.port)
    }

    /// Whether the service listens on every interface (`0.0.0.0`, `::`).
    pub fn listens_everywhere(&self) -> bool {
        matches!(self.host.as_str(), "0.0.0.0" | "::" | "[::]")
    }

    fn served_url(&self, port: u16) -> String {
        // Every interface: this machine's own name for itself is the best guess.
        let host = match self.listens_everywhere() {
            true => "127.0.0.1",
            false => self.host.as_str(),
        };
        match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("http://[{host}]:{port}"),
            Err(_) => format!("http://{host}:{port}"),
        }
    }
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
    /// In the footer of every page and mail; digests are not sent without it (CAN-SPAM).
    pub postal_address: String,
    pub privacy_url: String,
    pub logo_url: String,
    /// Buttons and links on pages and in mail: `#rgb` or `#rrggbb`.
    pub accent_color: String,
    /// The language of the public pages and readers' mail: `en` or `de` built in, or any
    /// other with `translations/<code>.toml` in `templates.dir`. Checked at start-up.
    pub language: String,
    /// An IANA time zone (`Europe/Berlin`): automations' schedules are read in it, and dates
    /// on the archive pages are shown in it. Checked at start-up.
    pub timezone: String,
}

/// A stored (UTC) time on the clock of `zone`: what the clinic's staff and readers read.
pub fn on_clock(at: chrono::NaiveDateTime, zone: chrono_tz::Tz) -> chrono::DateTime<chrono_tz::Tz> {
    use chrono::TimeZone;
    chrono::Utc.from_utc_datetime(&at).with_timezone(&zone)
}

impl SiteSettings {
    /// `site.timezone`, checked at start-up (UTC should it not parse).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.trim().parse().unwrap_or(chrono_tz::UTC)
    }

    /// Why a digest cannot go out yet, when it cannot: every newsletter must carry the
    /// sender's postal address (CAN-SPAM; the EU's laws want the sender named too).
    pub fn not_ready_for_digests(&self) -> Option<String> {
        self.postal_address.trim().is_empty().then(|| {
            "set site.postal_address (NEWSLETTER__SITE__POSTAL_ADDRESS) first: every newsletter \
             must carry the sender's postal address, and this one has none; then restart the \
             service"
                .to_string()
        })
    }
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
    /// Turns on VERP: every mail's envelope sender is this address with a tag naming its
    /// delivery (`bounces+1234-…@`). Empty: the envelope sender is `from`.
    pub bounce_address: String,
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
    /// A scheduled digest found this many minutes past its time (the service was down) is not
    /// sent late but marked `missed`.
    pub schedule_grace_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupSettings {
    /// Origins (`https://clinic.example`) whose pages may call the JSON signup API with
    /// `fetch()`: CORS. Empty: none but this service's own pages.
    pub allowed_origins: Vec<String>,
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
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("signup.allowed_origins"),
            )
            .build()
            .context("reading the configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        let port = settings.server.port;
        settings.server.serve_on(port);
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
        for (key, value) in [
            ("site.url", &self.site.url),
            ("site.privacy_url", &self.site.privacy_url),
            ("site.logo_url", &self.site.logo_url),
        ] {
            if !value.is_empty()
                && !url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            {
                bail!("{key} {value:?} must be empty or a URL starting with http:// or https://");
            }
        }
        for origin in &self.signup.allowed_origins {
            let parsed = url::Url::parse(origin).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.origin().ascii_serialization() == origin.trim_end_matches('/')
            });
            if parsed.is_none() {
                bail!(
                    "signup.allowed_origins: {origin:?} is not an origin like https://clinic.example \
                     (scheme and host, an optional port, no path)"
                );
            }
        }
        if self.site.timezone.trim().parse::<chrono_tz::Tz>().is_err() {
            bail!(
                "site.timezone {:?} is not a time zone like Europe/Berlin, America/New_York or UTC",
                self.site.timezone
            );
        }
        if !is_hex_color(&self.site.accent_color) {
            bail!(
                "site.accent_color {:?} must be a colour like #0b5cad or #06c",
                self.site.accent_color
            );
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_accent_colour_is_a_hex_colour_and_nothing_that_could_escape_css() {
        for good in ["#0b5cad", "#06C", "#7a1f5c"] {
            assert!(super::is_hex_color(good), "{good}");
        }
        for bad in [
            "0b5cad",
            "#0b5ca",
            "red",
            "#fff; } body { display:none",
            "",
            "#ggg",
        ] {
            assert!(!super::is_hex_color(bad), "{bad}");
        }
    }

    #[test]
    fn without_a_base_url_links_point_to_where_the_service_is_served() {
        let mut server = super::ServerSettings {
            host: "0.0.0.0".into(),
            port: 8080,
            base_url: String::new(),
            max_body_bytes: 1,
            trusted_proxies: Vec::new(),
            trust_forwarded_for: None,
        };
        server.serve_on(9000);
        assert_eq!(server.base_url, "http://127.0.0.1:9000");
        server.host = "::1".into();
        server.base_url = String::new();
        server.serve_on(9001);
        assert_eq!(server.base_url, "http://[::1]:9001");
        server.base_url = "https://news.clinic.example".into();
        server.serve_on(9002);
        assert_eq!(
            server.base_url, "https://news.clinic.example",
            "a base URL set stays"
        );
    }
}
