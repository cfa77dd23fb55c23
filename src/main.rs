//! The `certbound` binary. See `certbound --help` and docs/command-line.md.
//!
//! Standard output goes through `certbound::cli::out_line` (a closed stdout is a quiet exit,
//! not a `println!` panic); stderr through `certbound::cli::err_line`, which cannot panic.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    certbound_core::tls::install_default_provider();
    let cli = certbound::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Configuration warnings are printed as `warning: …` lines by the commands
                // that read a configuration; their tracing copy would repeat them.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,certbound_client::config=error")
                }),
        )
        .with_writer(std::io::stderr)
        // No colour codes when stderr is a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            certbound::cli::err_line(format_args!(
                "certbound: cannot start the async runtime: {e}"
            ));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(certbound::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of stdout went away (`certbound demo | head -1`): a normal, quiet end.
        Err(e) if certbound::cli::StdoutClosed::is_cause_of(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line: the error and its causes, joined.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !line.contains(&c) {
                    line.push_str(": ");
                    line.push_str(&c);
                }
            }
            certbound::cli::err_line(format_args!("certbound: {}", line.replace('\n', " ")));
            std::process::ExitCode::FAILURE
        }
    }
}
