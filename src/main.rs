use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    newsletter::telemetry::init();
    match newsletter::cli::run(newsletter::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
