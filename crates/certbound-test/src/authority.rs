//! The development authority (`certbound-authority`) on a loopback port, its state in a
//! temporary directory.

use std::path::Path;

use certbound_authority::{AuthorityOptions, DevAuthority, RunningAuthority};
use certbound_core::tls::TrustAnchors;

/// A running authority and the temporary directory holding its state (removed on drop).
pub struct TestAuthority {
    /// The temporary directory; the state is in `dir/state`.
    pub dir: tempfile::TempDir,
    /// The running authority.
    pub running: RunningAuthority,
}

impl TestAuthority {
    /// Starts an authority with the default options.
    pub async fn start() -> Self {
        Self::start_with(AuthorityOptions::default()).await
    }

    /// Starts an authority with `options` in a fresh temporary directory.
    pub async fn start_with(options: AuthorityOptions) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let running = spawn_in(&dir.path().join("state"), options).await;
        Self { dir, running }
    }

    /// Trust anchors holding the authority's CA (see [`anchors`]).
    pub fn anchors(&self) -> TrustAnchors {
        anchors(&self.running)
    }
}

/// Opens (or initialises) an authority whose state is `state_dir` and serves it on
/// `127.0.0.1:0`. Installs the process's default rustls crypto provider first.
pub async fn spawn_in(state_dir: &Path, options: AuthorityOptions) -> RunningAuthority {
    certbound_core::tls::install_default_provider();
    let authority = DevAuthority::open_or_init(state_dir, options).expect("open the authority");
    authority
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("serve the authority")
}

/// Trust anchors holding the running authority's CA: `TrustAnchors::default()` plus the CA.
pub fn anchors(running: &RunningAuthority) -> TrustAnchors {
    let mut a = TrustAnchors::default();
    a.add(&running.ca_cert());
    a
}
