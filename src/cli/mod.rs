//! The `certbound` command line (docs/command-line.md). The argument structs live here; each command's
//! behaviour lives in its own module.
//!
//! Standard output is written only through [`out_line`] / [`out_bytes`] (and the `outln!`
//! macro): a closed stdout (`certbound demo | head -1`) then ends the command quietly
//! instead of panicking in `println!`. Standard error likewise goes through [`err_line`],
//! which cannot panic. `clippy::print_stdout`/`print_stderr` are denied here to keep it so.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `println!` for the CLI: formats one line onto stdout through [`out_line`] and evaluates
/// to its `anyhow::Result<()>` (a closed stdout is [`StdoutClosed`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out_line(format_args!($($arg)*))
    };
}

pub mod api;
pub mod authority;
pub mod bench;
pub mod call;
pub mod cert;
pub mod demo;
pub mod inspect;
pub mod sample;
pub mod token;

/// Certificate-bound OAuth access tokens (RFC 8705 mTLS proof-of-possession).
#[derive(Debug, Parser)]
#[command(name = "certbound", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole scenario in one process on loopback: authority, protected API,
    /// certificate, bound token, mTLS call, and the refusals.
    #[command(after_help = "Example:\n  certbound demo --scheme dpop")]
    Demo(DemoArgs),
    /// The local development authority (Entra-shaped, OIDC, RFC 8705).
    #[command(subcommand)]
    Authority(AuthorityCommand),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Acquire an app token (client credentials).
    #[command(
        after_help = "Example:\n  certbound token --config appsettings.json --ca-cert dev-authority/ca.pem --json"
    )]
    Token(TokenArgs),
    /// Call a downstream API named in the configuration's `DownstreamApis`.
    #[command(
        after_help = "Example:\n  certbound call --config appsettings.json --api MyApi --ca-cert dev-authority/ca.pem"
    )]
    Call(CallArgs),
    /// The sample protected API.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Decode a token (without verifying it) and check its binding against a certificate.
    #[command(
        after_help = "Example:\n  certbound token --config appsettings.json --ca-cert dev-authority/ca.pem | certbound inspect - --cert my-app.pem"
    )]
    Inspect(InspectArgs),
    /// Load the sample protected API over N concurrent mTLS connections (in process).
    #[command(
        after_help = "Example:\n  certbound bench --target api --connections 100 --duration 5"
    )]
    Bench(BenchArgs),
}

/// `certbound bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent mTLS connections, each kept busy.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// What to load: `api` (GET /whoami with a bound token) or `authority` (mTLS PoP token
    /// requests to the development authority).
    #[arg(long, default_value = "api")]
    pub target: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `certbound demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print one JSON object instead of the narration.
    #[arg(long)]
    pub json: bool,
    /// Mint the binding certificate through the managed-identity (IMDS v2) emulator.
    #[arg(long)]
    pub managed_identity: bool,
    /// Protocol scheme: mtls_pop (default), bearer, dpop, pop or mtls.
    #[arg(long, default_value = "mtls_pop")]
    pub scheme: String,
}

/// `certbound authority …`.
#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Serve the development authority (initialises DIR on first run).
    #[command(
        after_help = "Example:\n  certbound authority serve --dir ./dev-authority --addr 127.0.0.1:5443 --tenant dev"
    )]
    Serve(AuthorityServeArgs),
    /// Register a client application.
    #[command(
        after_help = "Example:\n  certbound authority register --dir ./dev-authority --client-id my-app --cert my-app.pem --audience api://my-api --write-config appsettings.json"
    )]
    Register(AuthorityRegisterArgs),
}

/// `certbound authority serve`.
#[derive(Debug, Args)]
pub struct AuthorityServeArgs {
    /// State directory (CA, keys, registry).
    #[arg(long)]
    pub dir: PathBuf,
    /// Listen address for HTTPS.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Also serve the managed-identity (IMDS) emulator on this address (plain HTTP).
    #[arg(long)]
    pub imds_addr: Option<SocketAddr>,
    /// Tenant id (only used when DIR is initialised).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Token-signing algorithm when DIR is initialised: ES256, RS256 or PS256.
    #[arg(long, default_value = "ES256")]
    pub signing_alg: String,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime: u64,
    /// Demand a server nonce in DPoP proofs at the token endpoint (RFC 9449 §8).
    #[arg(long)]
    pub dpop_nonce: bool,
}

/// `certbound authority register`.
#[derive(Debug, Args)]
pub struct AuthorityRegisterArgs {
    /// State directory of the authority.
    #[arg(long)]
    pub dir: PathBuf,
    /// The application (client) id.
    #[arg(long)]
    pub client_id: String,
    /// The client's certificate (PEM).
    /// (One of --cert, --secret or a --subject-dn/--san-* is needed.)
    #[arg(long, conflicts_with = "secret")]
    pub cert: Option<PathBuf>,
    /// A method the client may authenticate by (repeatable; it may use these and no
    /// others): self_signed_tls_client_auth, tls_client_auth, private_key_jwt,
    /// client_secret_basic, client_secret_post. Defaults: with --cert both
    /// self_signed_tls_client_auth and private_key_jwt (as Entra treats a certificate
    /// credential); with --subject-dn/--san-* tls_client_auth; with --secret both secret
    /// methods.
    #[arg(long)]
    pub auth: Vec<String>,
    /// A client secret instead of a certificate.
    #[arg(long)]
    pub secret: Option<String>,
    /// tls_client_auth: the subject DN of the client's CA-issued certificates, RFC 4514
    /// text such as `CN=app,O=Contoso,C=DE`.
    #[arg(long, group = "tls_subject")]
    pub subject_dn: Option<String>,
    /// tls_client_auth: a DNS name SAN of the client's CA-issued certificates.
    #[arg(long, group = "tls_subject")]
    pub san_dns: Option<String>,
    /// tls_client_auth: a URI SAN of the client's CA-issued certificates.
    #[arg(long, group = "tls_subject")]
    pub san_uri: Option<String>,
    /// tls_client_auth: an IP address SAN of the client's CA-issued certificates.
    #[arg(long, group = "tls_subject")]
    pub san_ip: Option<String>,
    /// tls_client_auth: an e-mail address SAN of the client's CA-issued certificates.
    #[arg(long, group = "tls_subject")]
    pub san_email: Option<String>,
    /// Audiences the client may request (repeatable; none = any).
    #[arg(long)]
    pub audience: Vec<String>,
    /// Do not issue certificate-bound `Bearer` tokens (RFC 8705 §3) for mTLS-authenticated
    /// requests that did not ask for `mtls_pop`.
    #[arg(long)]
    pub no_bound_tokens: bool,
    /// Also write an appsettings.json for this client to FILE (refuses to overwrite it): the
    /// running authority's issuer (from DIR/ready.json, written by `authority serve`), the
    /// client id, the --cert credential (its key beside it as `<name>.key`) and a `MyApi`
    /// DownstreamApis entry (`MTLS_POP`, BaseUrl --api-url, scope `<first --audience>/.default`).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub write_config: Option<PathBuf>,
    /// With --write-config: the `MyApi` entry's BaseUrl.
    #[arg(
        long,
        value_name = "URL",
        requires = "write_config",
        default_value = "https://127.0.0.1:5444"
    )]
    pub api_url: String,
}

/// `certbound cert …`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Generate a key and certificate: PREFIX.pem and PREFIX.key (and PREFIX.pfx).
    #[command(
        after_help = "Examples:\n  certbound cert new --cn my-app --out my-app\n  certbound cert new --cn my-api --server --ca-dir ./dev-authority --out my-api"
    )]
    New(CertNewArgs),
}

/// `certbound cert new`.
#[derive(Debug, Args)]
pub struct CertNewArgs {
    /// Subject common name.
    #[arg(long)]
    pub cn: String,
    /// Output prefix.
    #[arg(long)]
    pub out: PathBuf,
    /// Sign with the development authority's CA in this directory (default: self-signed);
    /// it must be initialised (`certbound authority serve --dir DIR`).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
    /// Also write PREFIX.pfx protected by this password.
    #[arg(long)]
    pub pfx: Option<String>,
    /// Key type: ec-p256, ec-p384, rsa2048 or rsa3072.
    #[arg(long, default_value = "ec-p256")]
    pub key_type: String,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Replace existing PREFIX.pem / PREFIX.key / PREFIX.pfx (default: refuse to overwrite).
    #[arg(long)]
    pub force: bool,
    /// A TLS server certificate (`serverAuth`; SANs 127.0.0.1 and localhost plus each
    /// `--san`) for `api serve --tls-cert`, instead of a client certificate.
    #[arg(long)]
    pub server: bool,
    /// With --server: another DNS name or IP address SAN (repeatable).
    #[arg(long, requires = "server", value_name = "NAME")]
    pub san: Vec<String>,
}

/// `certbound token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Configuration file (appsettings.json style).
    #[arg(long)]
    pub config: PathBuf,
    /// Scopes (repeatable); default: the first downstream API's scopes.
    #[arg(long)]
    pub scope: Vec<String>,
    /// Protocol scheme: bearer, mtls_pop, pop or dpop (mtls sends no token). Default: the
    /// first DownstreamApis entry's ProtocolScheme, else bearer.
    #[arg(long)]
    pub scheme: Option<String>,
    /// Extra trust anchor for server certificates (PEM); repeatable.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,
    /// Bypass the cache.
    #[arg(long)]
    pub force_refresh: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `certbound call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Name of the API under `DownstreamApis`.
    #[arg(long)]
    pub api: String,
    /// Path relative to the API's BaseUrl (overrides RelativePath).
    #[arg(long)]
    pub path: Option<String>,
    /// Extra trust anchor for server certificates (PEM): the authority's and the API's;
    /// repeatable.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,
    /// Override the API's ProtocolScheme: bearer, mtls_pop, pop, dpop or mtls.
    #[arg(long)]
    pub scheme: Option<String>,
}

/// `certbound api …`.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Serve the sample protected API (`GET /whoami`).
    #[command(
        after_help = "Example:\n  certbound api serve --authority https://127.0.0.1:5443/dev/v2.0 --audience api://my-api --require-binding --ca-cert dev-authority/ca.pem --tls-cert my-api.pem --tls-key my-api.key --addr 127.0.0.1:5444"
    )]
    Serve(ApiServeArgs),
}

/// `certbound api serve`.
#[derive(Debug, Args)]
pub struct ApiServeArgs {
    /// The token issuer (authority URL) whose discovery document and keys to trust.
    #[arg(long)]
    pub authority: String,
    /// Accepted audience (repeatable).
    #[arg(long, required = true)]
    pub audience: Vec<String>,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Trust anchor for the authority's TLS certificate (PEM); repeatable.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,
    /// TLS server certificate (PEM), e.g. from `certbound cert new --server --ca-dir DIR`;
    /// default: a fresh self-signed one for 127.0.0.1/localhost in a temporary directory.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS server key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse tokens that carry no `cnf` binding.
    #[arg(long)]
    pub require_binding: bool,
    /// `GET /certificate` (client certificate alone, no token) admits only this `x5t#S256`
    /// thumbprint (base64url, or SHA-256 hex with optional colons); repeatable.
    #[arg(long = "allow-cert-thumbprint", value_name = "X5T_S256")]
    pub allow_cert_thumbprint: Vec<String>,
    /// `GET /certificate` admits only client certificates that chain to this CA (PEM);
    /// repeatable. With `--allow-cert-thumbprint` too, both must hold.
    #[arg(long = "client-ca-cert", value_name = "PEM")]
    pub client_ca_cert: Vec<PathBuf>,
    /// Demand server nonces in DPoP proofs (`401 use_dpop_nonce` with a `DPoP-Nonce`).
    #[arg(long)]
    pub dpop_nonce: bool,
    /// A public base URL of this API, possibly with a path prefix (e.g.
    /// `https://api.example.com` or `https://gw.example.com/orders-api`); repeatable. DPoP
    /// `htu` and signed-request `u`/`p` must name one of them, the one the request's `Host`
    /// names. Default: `https://<--addr>`; required when `--addr` is a wildcard address.
    #[arg(long = "external-url", value_name = "URL")]
    pub external_url: Vec<String>,
}

/// `certbound inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token, or `-` (default) to read it from standard input.
    pub token: Option<String>,
    /// A certificate (PEM) to check the token's binding against.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Standard output was closed by its reader (`EPIPE`, e.g. `certbound demo | head -1`).
/// Not a failure: `main` ends the process quietly with status 0 when a command returns it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("standard output is closed")]
pub struct StdoutClosed;

impl StdoutClosed {
    /// Whether `e` (or one of its causes) is a closed stdout.
    pub fn is_cause_of(e: &anyhow::Error) -> bool {
        e.chain().any(|c| c.is::<StdoutClosed>())
    }
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Writes `text` and a newline to stdout and flushes. A closed stdout is [`StdoutClosed`];
/// any other write error says it was stdout.
pub fn out_line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Writes `bytes` to stdout as they are and flushes (errors as for [`out_line`]).
pub fn out_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Reads a `--config` file (with environment overrides) and prints each of its unknown-key
/// warnings as one `warning: …` line on stderr (names only, never a value).
pub fn load_config(path: &std::path::Path) -> anyhow::Result<certbound_client::AppConfig> {
    let cfg = certbound_client::AppConfig::from_file(path)?;
    for w in cfg.warnings() {
        err_line(format_args!("warning: {w}"));
    }
    Ok(cfg)
}

/// `eprintln!` that cannot panic: when stderr is closed the line is lost, nothing else.
pub fn err_line(text: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints a server's ready line: exactly one JSON object on one line of stdout. A closed
/// stdout is ignored: the server keeps serving (nobody reads the line, nothing else needs it).
pub fn print_ready(value: &serde_json::Value) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// The protocol schemes as the command line spells them (help, errors and JSON alike).
pub const SCHEMES: &str = "bearer, mtls_pop, dpop, pop or mtls";

/// Parses a `--scheme` value (case-insensitive); the error lists [`SCHEMES`].
pub fn parse_scheme(text: &str) -> anyhow::Result<certbound_client::ProtocolScheme> {
    text.parse().map_err(|_| {
        anyhow::anyhow!(
            "--scheme `{}`: use {SCHEMES} (case-insensitive)",
            text.chars().take(40).collect::<String>()
        )
    })
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Authority(AuthorityCommand::Serve(a)) => authority::serve(a).await,
        Command::Authority(AuthorityCommand::Register(a)) => authority::register(a).await,
        Command::Cert(CertCommand::New(a)) => cert::new(a).await,
        Command::Token(a) => token::run(a).await,
        Command::Call(a) => call::run(a).await,
        Command::Api(ApiCommand::Serve(a)) => api::serve(a).await,
        Command::Inspect(a) => inspect::run(a).await,
        Command::Bench(a) => bench::run(a).await,
    }
}
