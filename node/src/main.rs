//! The `valori-node` server binary: see `valori-node --help` and docs/HTTP-API.md.

use clap::Parser;
use std::process::ExitCode;
use valori_node::registry::Registry;
use valori_node::replication::Replication;
use valori_node::{check_listen, serve, App, Args, DurabilityArg, Tls};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.openapi {
        print!("{}", valori_node::openapi_json());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        valori_node::LogFormatArg::Json => logs.json().init(),
        valori_node::LogFormatArg::Text => logs.init(),
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valori-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let keys = args.keys()?;
    check_listen(&args.listen, &keys)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("listening on {}: {e}", args.listen))?;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::from_pem_files(cert, key).await?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let registry = Registry::open(&args.data, args.open_settings())?;
        let app = App::new(registry, keys, args.limits()?);
        let replicas = args.stream_replicas as usize;
        let stream_ack = matches!(args.durability, DurabilityArg::Stream);
        match (&args.replicate, &args.follow) {
            (Some(url), _) => Replication::lead(url, replicas, stream_ack, &app).await?,
            (None, Some(url)) => {
                Replication::follow(url, replicas, args.data.clone(), &app).await?;
            }
            (None, None) if stream_ack => {
                return Err("--durability stream needs --replicate URL".into());
            }
            (None, None) => {}
        }
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // The one line on stdout: scripts and tests that listen on port 0 read the port here.
        println!("valori-node listening on {scheme}://{addr}");
        tracing::info!(
            listen = %addr,
            data = %args.data.display(),
            "valori-node ready"
        );
        serve(listener, app, tls, shutdown_signal()).await
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
