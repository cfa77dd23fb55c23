//! Child processes a test starts: killed when the guard drops, so a failing test leaves no
//! server behind.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::Value;

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server process that announced itself with one JSON line on stdout (the `certbound …
/// serve` ready line); killed when dropped unless [`terminate`](Self::terminate)d.
pub struct ServerProcess {
    child: ChildGuard,
    /// The ready line, parsed.
    pub ready: Value,
}

impl ServerProcess {
    /// Spawns `command` (stdout piped, stderr inherited) and waits for its first stdout
    /// line, which must be JSON.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the server process");
        let stdout = child.stdout.take().expect("the child's stdout");
        let child = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the ready line");
        let ready: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {line:?}"));
        Self { child, ready }
    }

    /// Guards a process the caller spawned and whose ready line it already read.
    pub fn adopt(child: Child, ready: Value) -> Self {
        Self {
            child: ChildGuard(child),
            ready,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (with the `kill` command: no `unsafe`) and returns the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.0.wait().expect("wait for the server process")
    }
}
