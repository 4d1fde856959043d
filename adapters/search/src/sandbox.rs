//! Text extraction in a child process, bounded in memory, CPU and wall time.
//!
//! Parsers inflate what documents compress: a PDF of a few kilobytes can hold gigabytes
//! of content, and a damaged file can send a parser into a loop. No limit inside the
//! parsers holds for every format, so extraction runs in a child process that sets its
//! own memory and CPU limits before it reads anything, and that the worker kills at a
//! deadline. Whatever a document does, it can only end its own child: the worker
//! sees [`ExtractError::Limit`] and the rest of the queue goes on.
//!
//! The child is a program that calls [`child_main`]: `gatehouse` itself (its hidden
//! `extract-text` command) or this crate's `gatehouse-extract`.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use crate::extract::{self, ExtractError};

/// What one extraction may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The child's memory (its data: heap and private writable mappings), in bytes
    /// (`RLIMIT_DATA`; the address space is bounded at four times this).
    pub memory_bytes: u64,
    /// The child's CPU time, in seconds (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// The longest the worker waits for the child before it kills it (also a child that
    /// sleeps or blocks, which uses no CPU).
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 1024 * 1024 * 1024,
            cpu_seconds: 20,
            deadline: Duration::from_secs(30),
        }
    }
}

/// Runs extractions in child processes of `program`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    program: PathBuf,
    args: Vec<String>,
    limits: Limits,
}

/// The child's exit codes besides success.
const EXIT_MALFORMED: u8 = 3;
const EXIT_UNSUPPORTED: u8 = 4;
const EXIT_USAGE: u8 = 2;
const EXIT_LIMIT: u8 = 5;

/// The share of its memory limit past which a child's result is not trusted. Parsers
/// that meet the limit do not always die of it: some catch the failed allocation and
/// carry on with less (a stream left undecoded, its text silently missing). A document
/// that needed this much is treated as one that went past the limit.
const MEMORY_TRUSTED_SHARE: u64 = 3;

/// The most of a child's stderr kept in an error message.
const MAX_MESSAGE_BYTES: usize = 512;

impl Sandbox {
    /// Extractions by `program` called with `args` first (then the content type and the
    /// limits), within `limits`.
    pub fn new(program: impl Into<PathBuf>, args: &[&str], limits: Limits) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(ToString::to_string).collect(),
            limits,
        }
    }

    /// The text of `content` of type `content_type`, extracted by a child process.
    ///
    /// # Errors
    /// [`ExtractError::Unsupported`] and [`ExtractError::Malformed`] as the child found
    /// them; [`ExtractError::Limit`] when it went past a limit or was killed at the
    /// deadline; [`ExtractError::Unavailable`] when it could not be started.
    pub async fn extract(
        &self,
        content_type: &str,
        content: Vec<u8>,
    ) -> Result<String, ExtractError> {
        let limit = |what: String| ExtractError::Limit(what);
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .arg(content_type)
            .arg(self.limits.memory_bytes.to_string())
            .arg(self.limits.cpu_seconds.to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ExtractError::Unavailable(format!("{}: {e}", self.program.display())))?;
        let mut stdin = child.stdin.take();
        let feed = async move {
            if let Some(stdin) = stdin.as_mut() {
                // A child that stops reading (it failed) closes the pipe: not our error.
                let _ = stdin.write_all(&content).await;
            }
            drop(stdin);
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        // On the deadline the child is dropped, and so killed.
        let output = tokio::time::timeout(self.limits.deadline, run)
            .await
            .map_err(|_| limit(format!("no answer within {:?}", self.limits.deadline)))?
            .map_err(|e| limit(format!("the extractor failed: {e}")))?;
        let message = || {
            let stderr = String::from_utf8_lossy(&output.stderr);
            extract::truncate(stderr.trim().to_string(), MAX_MESSAGE_BYTES)
        };
        match output.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            Some(code) if code == i32::from(EXIT_MALFORMED) => {
                Err(ExtractError::Malformed(kind_name(content_type), message()))
            }
            Some(code) if code == i32::from(EXIT_UNSUPPORTED) => Err(ExtractError::Unsupported),
            Some(code) if code == i32::from(EXIT_LIMIT) => Err(limit(message())),
            Some(code) => Err(limit(format!(
                "the extractor exited with {code}: {}",
                message()
            ))),
            None => {
                use std::os::unix::process::ExitStatusExt as _;
                let signal = output.status.signal().unwrap_or_default();
                Err(limit(format!(
                    "the extractor was killed by signal {signal} (memory or CPU limit)"
                )))
            }
        }
    }
}

fn kind_name(content_type: &str) -> &'static str {
    extract::Kind::of(content_type).map_or("content", extract::Kind::as_str)
}

/// The child's side: `args` are the content type, the memory limit in bytes and
/// the CPU limit in seconds. Sets the limits, reads the content from stdin, and writes its
/// text to stdout. Exit codes: 0 text written, 2 usage, 3 malformed (why on stderr),
/// 4 unsupported type, 5 near its memory limit (see [`MEMORY_TRUSTED_SHARE`]).
pub fn child_main(args: &[String]) -> ExitCode {
    let [content_type, memory, cpu] = args else {
        eprintln!("usage: <content-type> <memory-bytes> <cpu-seconds>");
        return ExitCode::from(EXIT_USAGE);
    };
    let (Ok(memory), Ok(cpu)) = (memory.parse::<u64>(), cpu.parse::<u64>()) else {
        eprintln!("the limits are whole numbers");
        return ExitCode::from(EXIT_USAGE);
    };
    if let Err(e) = limit_self(memory, cpu) {
        eprintln!("the limits could not be set: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    // Only the text goes to the real stdout: anything a parser prints goes to stderr.
    let Ok(mut out) = take_stdout() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let mut content = Vec::new();
    if std::io::stdin()
        .take(extract::MAX_INPUT_BYTES + 1)
        .read_to_end(&mut content)
        .is_err()
    {
        return ExitCode::from(EXIT_USAGE);
    }
    let extracted = extract::extract(content_type, &content);
    let peak = peak_memory_bytes();
    if peak > memory / MEMORY_TRUSTED_SHARE {
        eprintln!(
            "it used {} MiB, near its limit of {} MiB",
            peak >> 20,
            memory >> 20
        );
        return ExitCode::from(EXIT_LIMIT);
    }
    match extracted {
        Ok(text) => match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(EXIT_USAGE),
        },
        Err(ExtractError::Unsupported) => ExitCode::from(EXIT_UNSUPPORTED),
        Err(ExtractError::Limit(why)) => {
            eprintln!("{why}");
            ExitCode::from(EXIT_LIMIT)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_MALFORMED)
        }
    }
}

/// Limits this process's memory and CPU time (soft and hard alike: the process cannot
/// raise them again). Memory is its data (`RLIMIT_DATA`: heap and private writable
/// mappings, what parsers allocate); its address space (`RLIMIT_AS`) is bounded too, but
/// more loosely, because allocators reserve address space they never use (mimalloc's
/// reservations left a debug build no room to grow its stack under a 1 GiB `RLIMIT_AS`).
fn limit_self(memory_bytes: u64, cpu_seconds: u64) -> nix::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_DATA, memory_bytes, memory_bytes)?;
    let address_space = memory_bytes.saturating_mul(ADDRESS_SPACE_FACTOR);
    setrlimit(Resource::RLIMIT_AS, address_space, address_space)?;
    setrlimit(Resource::RLIMIT_CPU, cpu_seconds, cpu_seconds)
}

/// The address space a child may reserve, as a multiple of its memory limit.
const ADDRESS_SPACE_FACTOR: u64 = 4;

/// The most memory this process image has had resident, in bytes: `VmHWM` of
/// `/proc/self/status`, which starts afresh at `exec` (`getrusage`'s `ru_maxrss` does not:
/// it would carry the parent's size into the child).
fn peak_memory_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The process's stdout as a file of its own, with fd 1 pointed at stderr.
fn take_stdout() -> nix::Result<std::fs::File> {
    let stdout = nix::unistd::dup(std::io::stdout())?;
    nix::unistd::dup2_stdout(std::io::stderr())?;
    Ok(std::fs::File::from(stdout))
}
