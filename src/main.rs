use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    newsletter::telemetry::init();
    match newsletter::cli::run(newsletter::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A mail server's pipe retries a message later on EX_TEMPFAIL, not on 1.
            match e.downcast_ref::<newsletter::cli::TryAgainLater>() {
                Some(_) => std::process::ExitCode::from(75),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
