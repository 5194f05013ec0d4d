//! The inbound SMTP listener inside `serve` (`inbound.listen`, e.g. `127.0.0.1:2525`): a relay
//! hands it the bounces and unsubscribe mails addressed to `mail.bounce_address`. It takes mail
//! only for our tagged addresses (and the bare bounce address, whose mail is matched by the
//! recipient it names); anyone else gets 550 at RCPT. A message over
//! `inbound.max_message_bytes` gets 552, a client over `inbound.messages_per_minute` 421, and
//! when the database cannot be reached 451, so the sender keeps the message and tries again.

use std::net::{IpAddr, TcpListener};
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server, SslConfig};

use super::{TagKind, Verp, process};
use crate::configuration::Settings;
use crate::db::Db;

/// Starts the listener on its own threads; it serves as long as the process lives.
pub fn start(
    listener: TcpListener,
    db: Db,
    settings: Arc<Settings>,
    verp: Verp,
) -> anyhow::Result<()> {
    let per_minute =
        NonZeroU32::new(settings.inbound.messages_per_minute).unwrap_or(NonZeroU32::MIN);
    let handler = InboundHandler {
        shared: Arc::new(Shared {
            db,
            bare: settings.mail.bounce_address.trim().to_ascii_lowercase(),
            max_bytes: settings.inbound.max_message_bytes,
            settings,
            verp,
            runtime: tokio::runtime::Handle::current(),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }),
        recipients: Vec::new(),
        data: Vec::new(),
        too_big: false,
    };
    let address = listener.local_addr()?;
    let mut server = Server::new(handler);
    server
        .with_name(
            hostname::get()
                .map(|h| h.to_string_lossy().to_string())
                .unwrap_or_default(),
        )
        .with_ssl(SslConfig::None)
        .map_err(|e| anyhow::anyhow!("the inbound listener: {e}"))?
        .with_num_threads(4)
        .with_tcp_listener(listener);
    std::thread::Builder::new()
        .name("inbound-smtp".into())
        .spawn(move || {
            if let Err(e) = server.serve() {
                tracing::error!(error = %e, "the inbound SMTP listener stopped");
            }
        })?;
    tracing::info!(%address, "inbound SMTP listener for bounces and unsubscribe mail");
    Ok(())
}

struct Shared {
    db: Db,
    settings: Arc<Settings>,
    verp: Verp,
    /// `mail.bounce_address` itself, lower case.
    bare: String,
    max_bytes: usize,
    runtime: tokio::runtime::Handle,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// One connection's transaction.
#[derive(Clone)]
struct InboundHandler {
    shared: Arc<Shared>,
    recipients: Vec<String>,
    data: Vec<u8>,
    too_big: bool,
}

impl Handler for InboundHandler {
    fn mail(&mut self, ip: IpAddr, _domain: &str, _from: &str) -> Response {
        self.recipients.clear();
        self.data.clear();
        self.too_big = false;
        if self.shared.limiter.check_key(&ip.to_canonical()).is_err() {
            tracing::info!(client = %ip, "inbound mail rate-limited");
            return Response::custom(
                421,
                "4.7.0 Too many messages from your address; try again later".into(),
            );
        }
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let to = to.trim().trim_matches(['<', '>']).to_ascii_lowercase();
        let ours = to == self.shared.bare
            || matches!(
                self.shared.verp.verify(&to),
                Some((TagKind::Bounce | TagKind::Unsubscribe, _))
            );
        if !ours {
            return Response::custom(
                550,
                "5.1.1 No such mailbox here: this server takes the newsletter's bounces only"
                    .into(),
            );
        }
        self.recipients.push(to);
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.data.len() + buf.len() > self.shared.max_bytes {
            self.too_big = true;
        } else {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if self.too_big {
            return Response::custom(
                552,
                format!(
                    "5.3.4 Message too big: at most {} bytes",
                    self.shared.max_bytes
                ),
            );
        }
        let shared = &self.shared;
        for recipient in &self.recipients {
            let processed = shared.runtime.block_on(process(
                &shared.db,
                &shared.settings,
                Some(&shared.verp),
                &self.data,
                Some(recipient),
            ));
            if let Err(e) = processed {
                tracing::warn!(error = format!("{e:#}"), "inbound mail not processed: 451");
                return Response::custom(
                    451,
                    "4.3.0 Not processed just now; try again later".into(),
                );
            }
        }
        Response::custom(250, "2.0.0 Read, thank you".into())
    }
}
