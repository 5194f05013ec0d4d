//! The one place that wires things together: database, templates, mailer, the HTTP server
//! and the delivery worker.

use std::net::{IpAddr, TcpListener};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpMessage, HttpServer, web};
use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, watch};
use tracing_actix_web::TracingLogger;

use crate::configuration::Settings;
use crate::db::Db;
use crate::db::group_commit::GroupCommit;
use crate::db::subscribers::Signup;
use crate::delivery::{DbWorker, DigestGate, Handoff, Signed, signup_writer};
use crate::email::{Composer, Mailer, Templates};
use crate::routes;
use crate::telemetry::RequestSpan;

/// The largest form the staff pages take (a digest's introduction can be long).
const ADMIN_FORM_BYTES: usize = 256 * 1024;

/// Shared by every handler.
pub struct AppState {
    pub db: Db,
    pub templates: Arc<Templates>,
    pub settings: Arc<Settings>,
    pub wake_worker: Arc<Notify>,
    /// What this process's worker knows of paused and cancelled digests.
    pub digest_gate: DigestGate,
    /// Signups are written in shared transactions (see [`crate::db::group_commit`]).
    pub signups: GroupCommit<Signup, Signed>,
    pub signup_limiter: SignupLimiter,
    pub login_limiter: routes::staff::LoginLimiter,
    pub composer: Arc<Composer>,
    pub mailer: Mailer,
    /// Runs an automation when staff ask (the scheduler runs them on their schedule).
    pub automations: crate::automations::Runner,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Signups per client address per minute (GCRA, so a burst up to the limit is fine).
pub struct SignupLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl SignupLimiter {
    pub fn per_minute(limit: u32) -> SignupLimiter {
        let quota = Quota::per_minute(NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN));
        SignupLimiter {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// `Err(seconds to wait)` when this client is over its limit.
    pub fn check(&self, client: &str) -> Result<(), u64> {
        let key = normalize_client(client);
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients that have been quiet, so memory stays bounded.
    pub fn forget_quiet_clients(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// One key per IPv4 address, one per /64 for IPv6 (a single host usually owns a whole /64).
fn normalize_client(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => client.to_string(),
    }
}

/// Everything a running service holds: the HTTP server and, unless disabled, the worker.
pub struct Application {
    port: u16,
    server: Server,
    worker: Option<DbWorker>,
    /// Starts scheduled digests and runs automations; runs wherever a worker does.
    scheduler: Option<crate::scheduler::Scheduler>,
    db: Db,
}

pub struct Parts {
    pub db: Db,
    pub composer: Arc<Composer>,
    pub mailer: Mailer,
    pub templates: Arc<Templates>,
    pub verp: Option<crate::bounces::Verp>,
    /// This process's counters, for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Opens the database (running migrations) and builds the mail side.
pub fn build_parts(settings: &Settings) -> anyhow::Result<Parts> {
    let db = Db::open(&settings.database)?;
    let applied = db.migrate()?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    let verp = verp_of(&db, settings)?;
    let (templates, composer) = load_templates(settings, verp.clone())?;
    let mailer = Mailer::new(&settings.mail)?;
    Ok(Parts {
        db,
        composer,
        mailer,
        templates,
        verp,
        metrics: Arc::default(),
    })
}

/// VERP tags, when `mail.bounce_address` is set: their key is made on first use and kept in
/// the database, so every instance tags and checks alike.
pub fn verp_of(db: &Db, settings: &Settings) -> anyhow::Result<Option<crate::bounces::Verp>> {
    let address = settings.mail.bounce_address.trim();
    if address.is_empty() {
        return Ok(None);
    }
    let mut conn = db.get().context("reading the VERP key")?;
    let key =
        crate::db::service_keys::service_key(&mut conn, "verp").context("reading the VERP key")?;
    Ok(Some(crate::bounces::Verp::new(address, &key)?))
}

/// The templates (with `templates.dir`'s files) and the composer made of them. Every page and
/// mail is rendered once on the way, so a broken template stops start-up (and `templates check`)
/// naming its file.
pub fn load_templates(
    settings: &Settings,
    verp: Option<crate::bounces::Verp>,
) -> anyhow::Result<(Arc<Templates>, Arc<Composer>)> {
    let templates = Arc::new(Templates::load_from(
        settings.templates.dir(),
        &settings.site.language,
    )?);
    crate::routes::check_pages(&templates, settings)?;
    let composer = Arc::new(Composer::new(settings, templates.clone(), verp)?);
    Ok((templates, composer))
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and prepares, but does not start, the worker.
    pub fn build(mut settings: Settings, with_worker: bool) -> anyhow::Result<Application> {
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener =
            TcpListener::bind(&address).with_context(|| format!("listening on {address}"))?;
        let port = listener.local_addr()?.port();
        settings.server.serve_on(port);
        settings.server.port = port;
        if settings.server.base_url_is_served_address() && settings.server.listens_everywhere() {
            tracing::warn!(
                base_url = settings.base_url(),
                "server.base_url is not set: links in mail point to this machine only; set it to \
                 the public address (https://news.example.org)"
            );
        }
        let settings = Arc::new(settings);
        let parts = build_parts(&settings)?;
        let wake = Arc::new(Notify::new());
        let gate = DigestGate::default();
        // Signups hand their confirmations to the worker of this process, when it runs one.
        let handoff =
            with_worker.then(|| Arc::new(Handoff::for_settings(&parts, &settings, wake.clone())));
        let state = web::Data::new(AppState {
            db: parts.db.clone(),
            templates: parts.templates.clone(),
            settings: settings.clone(),
            wake_worker: wake.clone(),
            digest_gate: gate.clone(),
            signups: signup_writer(parts.db.clone(), handoff.clone()),
            signup_limiter: SignupLimiter::per_minute(settings.signup.rate_limit_per_minute),
            login_limiter: routes::staff::LoginLimiter::per_15_minutes(
                settings.admin.login_attempts_per_15_minutes,
            ),
            composer: parts.composer.clone(),
            mailer: parts.mailer.clone(),
            automations: crate::automations::Runner::new(
                parts.db.clone(),
                settings.clone(),
                parts.composer.clone(),
                parts.mailer.clone(),
                wake.clone(),
            ),
            metrics: parts.metrics.clone(),
        });
        let scheduler = with_worker
            .then(|| crate::scheduler::Scheduler::new(&parts, settings.clone(), wake.clone()));
        let worker =
            with_worker.then(|| DbWorker::from_parts(&parts, &settings, wake, gate, handoff));
        start_inbound_listener(&parts, &settings)?;
        let server = run_server(listener, state, settings.server.max_body_bytes)?;
        tracing::info!(%address, port, base_url = settings.base_url(), "listening");
        Ok(Application {
            port,
            server,
            worker,
            scheduler,
            db: parts.db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stops the HTTP server from elsewhere (tests stop it when done).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (Ctrl-C or SIGTERM), then lets the worker finish what it
    /// holds.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = self
            .scheduler
            .map(|s| tokio::spawn(s.run_until_stopped(stop_rx.clone())));
        let worker = self
            .worker
            .map(|w| tokio::spawn(w.run_until_stopped(stop_rx)));
        let served = self.server.await.context("the HTTP server failed");
        let _ = stop_tx.send(true);
        if let Some(scheduler) = scheduler {
            scheduler.await.context("the scheduler panicked")??;
        }
        if let Some(worker) = worker {
            worker.await.context("the delivery worker panicked")??;
        }
        served
    }
}

/// The SMTP listener for bounces, when `inbound.listen` is set.
fn start_inbound_listener(parts: &Parts, settings: &Arc<Settings>) -> anyhow::Result<()> {
    let address = settings.inbound.listen.trim();
    if address.is_empty() {
        return Ok(());
    }
    let verp = parts.verp.clone().context(
        "inbound.listen needs mail.bounce_address: the listener takes mail for its tagged addresses",
    )?;
    let listener = TcpListener::bind(address)
        .with_context(|| format!("listening for inbound mail on {address}"))?;
    crate::bounces::listener::start(listener, parts.db.clone(), settings.clone(), verp)
}

/// CORS for the JSON signup API: the pages of `origins` may `fetch()` it. Any other origin gets
/// no CORS headers, so its scripts cannot read the answer, but is not refused: an HTML form on
/// any site may post here, and this service's own pages send their `Origin` too.
fn signup_cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin.trim_end_matches('/'))
        })
        .allowed_methods(["POST"])
        .allowed_headers([header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([header::RETRY_AFTER])
        .max_age(3600)
        .block_on_origin_mismatch(false)
}

/// A public path taking `allow`; other methods get 405 with `Allow` (and the site's page, or
/// JSON, from [`routes::error_pages`]).
fn page(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        actix_web::HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow))
            .finish()
    }))
}

/// A page's route: GET, and HEAD for link checkers (mail scanners, previews) that only look.
fn get_or_head() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

fn run_server(
    listener: TcpListener,
    state: web::Data<AppState>,
    max_body: usize,
) -> anyhow::Result<Server> {
    let weak_state = Arc::downgrade(&state.clone().into_inner());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(state) = weak_state.upgrade() else {
                break;
            };
            state.signup_limiter.forget_quiet_clients();
            state.login_limiter.forget_quiet();
        }
    });
    let allowed_origins = state.settings.signup.allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(routes::error_pages())
            // Header names go out as `Location`, not `location`: some simple clients look them
            // up case-sensitively.
            .wrap_fn(|request, service| {
                let response = service.call(request);
                async move {
                    let mut response = response.await?;
                    response
                        .response_mut()
                        .head_mut()
                        .set_camel_case_headers(true);
                    Ok(response)
                }
            })
            .wrap_fn(|mut request, service| {
                let body = request.take_payload();
                request.set_payload(crate::routes::with_read_timeout(body));
                service.call(request)
            })
            .wrap(TracingLogger::<RequestSpan>::new())
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .service(page("/", "GET, HEAD").route(get_or_head().to(routes::front_door)))
            .service(page("/health", "GET, HEAD").route(get_or_head().to(routes::health)))
            .service(page("/metrics", "GET").route(web::get().to(routes::metrics)))
            .service(page("/archive", "GET, HEAD").route(get_or_head().to(routes::archive_index)))
            .service(
                page("/archive.atom", "GET, HEAD").route(get_or_head().to(routes::archive_feed)),
            )
            .service(
                page("/archive/{key}", "GET, HEAD").route(get_or_head().to(routes::archive_digest)),
            )
            .service(
                page("/subscribe", "GET, HEAD").route(get_or_head().to(routes::subscribe_page)),
            )
            .service(
                page("/subscribe/thanks", "GET, HEAD").route(get_or_head().to(routes::thanks_page)),
            )
            .service(
                page("/subscriptions", "POST")
                    .wrap(actix_web::middleware::Condition::new(
                        !allowed_origins.is_empty(),
                        signup_cors(&allowed_origins),
                    ))
                    .route(web::post().to(routes::subscribe)),
            )
            .service(
                page("/subscriptions/confirm", "GET, HEAD, POST")
                    .route(get_or_head().to(routes::confirm_page))
                    .route(web::post().to(routes::confirm)),
            )
            .service(
                page("/subscriptions/confirm/resend", "POST")
                    .route(web::post().to(routes::resend_confirmation)),
            )
            .service(
                page("/unsubscribe", "GET, HEAD, POST")
                    .route(get_or_head().to(routes::unsubscribe_page))
                    .route(web::post().to(routes::unsubscribe)),
            )
            .service(
                web::scope("/admin/api")
                    .app_data(routes::admin::json_config(max_body))
                    .app_data(routes::admin::query_config())
                    .configure(routes::admin::configure),
            )
            .service(
                web::scope("/admin")
                    .wrap_fn(|request, service| {
                        let response = service.call(request);
                        async move { Ok(routes::staff::quiet_redirects(response.await?)) }
                    })
                    .app_data(web::PayloadConfig::new(max_body.max(ADMIN_FORM_BYTES)))
                    .configure(routes::staff::configure),
            )
            .default_service(web::to(routes::not_found))
    })
    .listen(listener)?
    .run();
    Ok(server)
}
