//! Running the mail command (`[mail] command`): argv without a shell, one
//! message on its stdin, exit 0 = sent.
//!
//! * The command gets at most `timeout`; then it is killed (SIGKILL) and the
//!   try counts as failed. A command that forks a grandchild keeping our
//!   pipes open does not hold us either: after the command itself has
//!   ended we wait at most a second more for its stderr.
//! * Its stderr is kept, cut to `STDERR_KEEP` bytes, for `last_error` and
//!   `mail test`; the rest is read and dropped (a chatty command must not
//!   block on a full pipe). Its stdout is discarded.
//! * It does not inherit `HALLPASS_MASTER_KEY`: the mail command has no
//!   business with the key that seals everything.
//! * Its stdin is written by a thread of its own, so a command that never
//!   reads cannot stall the caller past the timeout.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// Bytes of the command's stderr kept.
pub const STDERR_KEEP: usize = 4096;

/// What one run of the command came to.
#[derive(Debug)]
pub struct Outcome {
    /// How it ended; None when it could not be started or was killed.
    pub status: Option<ExitStatus>,
    /// The start of its stderr (lossy UTF-8).
    pub stderr: String,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Why it could not be started (missing, not executable, ...).
    pub spawn_error: Option<String>,
}

impl Outcome {
    /// Exit 0: the mail is handed over.
    pub fn sent(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// One line saying why the mail was not sent (for `last_error`): the
    /// exit status, or the timeout, or the start failure, then stderr.
    pub fn failure(&self, argv0: &str, timeout: Duration) -> String {
        let why = if let Some(e) = &self.spawn_error {
            format!("cannot run {argv0}: {e}")
        } else if self.timed_out {
            format!(
                "{argv0} did not finish within {} s and was killed",
                timeout.as_secs()
            )
        } else {
            match self.status {
                Some(s) => format!("{argv0} exited with {s}"),
                None => format!("{argv0} ended without a status"),
            }
        };
        let err = self.stderr.trim();
        if err.is_empty() {
            why
        } else {
            format!("{why}: {err}")
        }
    }
}

/// Kills the command and everything it forked (its process group: a
/// `sh -c` wrapper's sendmail, a backgrounded child), then reaps it. Only
/// at a timeout: after a normal exit, a mailer's own background delivery
/// (exim's, say) is left to finish.
fn kill_all(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let group = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `argv` with `input` on its stdin, killed after `timeout`.
pub fn run(argv: &[String], input: &[u8], timeout: Duration) -> Outcome {
    let mut out = Outcome {
        status: None,
        stderr: String::new(),
        timed_out: false,
        spawn_error: None,
    };
    let Some((prog, args)) = argv.split_first() else {
        out.spawn_error = Some("no command configured".into());
        return out;
    };
    let mut command = Command::new(prog);
    command
        .args(args)
        .env_remove("HALLPASS_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own process group: a timeout kills whatever it forked too.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            out.spawn_error = Some(e.to_string());
            return out;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // A command that exits without reading gives EPIPE here: its exit
        // status says what happened, so the write error is not reported.
        let _ = std::thread::Builder::new()
            .name("mail-stdin".into())
            .spawn(move || {
                let _ = stdin.write_all(&input);
            });
    }
    let (err_tx, err_rx) = channel();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::thread::Builder::new()
            .name("mail-stderr".into())
            .spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                let _ = err_tx.send(kept);
            });
    }
    let deadline = Instant::now() + timeout;
    // Short sleeps first (a sendmail hands over in milliseconds), then
    // at most 50 ms between looks.
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                out.status = Some(status);
                break;
            }
            Ok(None) if Instant::now() >= deadline => {
                kill_all(&mut child);
                out.timed_out = true;
                break;
            }
            Ok(None) => {
                std::thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
                nap = (nap * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                kill_all(&mut child);
                out.spawn_error = Some(format!("waiting for it: {e}"));
                break;
            }
        }
    }
    if let Ok(kept) = err_rx.recv_timeout(Duration::from_secs(1)) {
        out.stderr = String::from_utf8_lossy(&kept).into_owned();
    }
    out
}

/// Where `argv0` would be run from: itself when it holds a `/`, else the
/// first match on PATH. None when it is not found.
pub fn locate(argv0: &str) -> Option<std::path::PathBuf> {
    if argv0.contains('/') {
        let p = std::path::PathBuf::from(argv0);
        return p.exists().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(argv0))
        .find(|p| p.is_file())
}

/// True when `path` is a file this process may execute.
pub fn is_executable(path: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn exit_zero_is_sent_and_the_message_reaches_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m");
        let o = run(
            &sh(&format!("cat > {}", file.display())),
            b"hello\r\n",
            Duration::from_secs(10),
        );
        assert!(o.sent(), "{o:?}");
        assert_eq!(std::fs::read(&file).unwrap(), b"hello\r\n");
    }

    #[test]
    fn a_failure_keeps_the_exit_status_and_the_start_of_stderr() {
        let o = run(
            &sh("head -c 10000 /dev/zero | tr '\\0' x >&2; exit 3"),
            b"",
            Duration::from_secs(10),
        );
        assert!(!o.sent());
        assert_eq!(o.status.and_then(|s| s.code()), Some(3));
        assert_eq!(o.stderr.len(), STDERR_KEEP);
        assert!(o
            .failure("sh", Duration::from_secs(10))
            .contains("exit status: 3"));
    }

    #[test]
    fn a_hanging_command_is_killed_at_the_timeout() {
        let started = Instant::now();
        let o = run(&sh("exec sleep 30"), b"", Duration::from_millis(300));
        assert!(o.timed_out && !o.sent());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(o
            .failure("sh", Duration::from_secs(1))
            .contains("was killed"));
    }

    #[cfg(unix)]
    #[test]
    fn a_timeout_kills_what_the_command_forked_too() {
        // Review of issue 9: only the direct child was killed; a forked
        // sendmail could still deliver, and a retry then sends it twice.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("delivered");
        let script = format!("(sleep 0.6; touch '{}') & sleep 30", marker.display());
        let o = run(&sh(&script), b"", Duration::from_millis(200));
        assert!(o.timed_out);
        std::thread::sleep(Duration::from_millis(1200));
        assert!(!marker.exists(), "the forked child lived on");
    }

    #[test]
    fn a_missing_command_says_so() {
        let o = run(
            &["/nonexistent/sendmail".to_string()],
            b"",
            Duration::from_secs(1),
        );
        assert!(!o.sent());
        assert!(o
            .failure("/nonexistent/sendmail", Duration::from_secs(1))
            .contains("cannot run"));
        assert!(locate("/nonexistent/sendmail").is_none());
        assert!(locate("sh").is_some_and(|p| is_executable(&p)));
    }
}
