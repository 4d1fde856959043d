//! A private PostgreSQL cluster, started from the system's PostgreSQL binaries.
//!
//! `gatehouse` uses it when no database URL is configured, and test suites use it to talk
//! to a real PostgreSQL. The cluster lives in a data directory of its own (created with
//! `initdb` on first use), listens on 127.0.0.1 on a port of its own, trusts local
//! connections, and is stopped when the [`PgCluster`] is dropped. PostgreSQL refuses to
//! run as root: when this process is root, the cluster runs as the `postgres` system user.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why the cluster could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `initdb`, `pg_ctl` or `postgres` is not installed.
    #[error(
        "PostgreSQL server binaries not found (looked on PATH and in /usr/lib/postgresql/*/bin): install postgresql"
    )]
    NotInstalled,
    /// A PostgreSQL tool failed.
    #[error("{tool} failed: {output}")]
    Tool {
        /// The tool.
        tool: String,
        /// What it printed.
        output: String,
    },
    /// The server did not accept connections in time.
    #[error("PostgreSQL did not start within {0:?}; see {1}")]
    Timeout(Duration, PathBuf),
    /// File system trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Connection URLs of a provisioned database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The owner of the tables: for migrations.
    pub owner_url: String,
    /// The application role: `NOSUPERUSER NOBYPASSRLS`, owns nothing.
    pub app_url: String,
}

/// A running private cluster.
#[derive(Debug)]
pub struct PgCluster {
    data_dir: PathBuf,
    bin: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
}

impl PgCluster {
    /// Starts the cluster in `data_dir` (initialising it when empty) on `port` (a free one
    /// when `None`), and waits until it accepts connections.
    ///
    /// # Errors
    /// [`ClusterError`] when the binaries are missing or the cluster cannot start.
    pub fn start(data_dir: &Path, port: Option<u16>) -> Result<Self, ClusterError> {
        let bin = find_binaries().ok_or(ClusterError::NotInstalled)?;
        std::fs::create_dir_all(data_dir)?;
        let data_dir = data_dir.canonicalize()?;
        let owner = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        if let Some((uid, gid)) = owner {
            chown_tree(&data_dir, uid, gid)?;
            make_ancestors_traversable(&data_dir)?;
        }
        let port = match port {
            Some(p) => p,
            None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let cluster = Self {
            data_dir,
            bin,
            port,
            owner,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        } else if cluster.data_dir.join("postmaster.pid").exists() {
            // Left running by a process that was killed: stop it and start afresh.
            let _ = cluster.stop();
        }
        cluster.launch()?;
        Ok(cluster)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A URL for the superuser `postgres` to database `db`.
    pub fn superuser_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL in database `db` as the superuser (with `psql`, stopping at the first error).
    ///
    /// # Errors
    /// [`ClusterError::Tool`] with psql's message.
    pub fn execute(&self, db: &str, sql: &str) -> Result<(), ClusterError> {
        self.psql(db, &["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .map(drop)
    }

    /// The unaligned, header-less output of a query.
    fn query_one(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        self.psql(db, &["-tA", "-c", sql])
    }

    fn psql(&self, db: &str, args: &[&str]) -> Result<String, ClusterError> {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", db];
        all.extend_from_slice(args);
        self.run("psql", &all)
    }

    /// Creates (once) the database `db`, owned by the role `gatehouse_owner` (which runs
    /// migrations), and the application role `gatehouse_app` (`NOSUPERUSER NOBYPASSRLS`,
    /// owning nothing). Returns the owner's and the application's URLs.
    ///
    /// # Errors
    /// [`ClusterError::Tool`] when the SQL fails.
    pub fn provision(&self, db: &str) -> Result<Provisioned, ClusterError> {
        self.execute(
            "postgres",
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_owner') THEN \
                 CREATE ROLE gatehouse_owner LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE; END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN \
                 CREATE ROLE gatehouse_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB; END IF; \
             END $$;",
        )?;
        let exists = self.query_one(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )?;
        if exists.trim() == "0" {
            self.execute(
                "postgres",
                &format!("CREATE DATABASE \"{db}\" OWNER gatehouse_owner"),
            )?;
            self.execute(db, "REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO gatehouse_app")?;
        }
        let url = |role: &str| format!("postgres://{role}@127.0.0.1:{}/{db}", self.port);
        Ok(Provisioned {
            owner_url: url("gatehouse_owner"),
            app_url: url("gatehouse_app"),
        })
    }

    /// Stops the server (fast shutdown); the data directory stays.
    ///
    /// # Errors
    /// [`ClusterError::Tool`] if `pg_ctl stop` fails.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["stop", "-D", &dir, "-m", "fast", "-w", "-t", "30"],
        )
        .map(drop)
    }

    /// Starts a stopped server again, on the same port.
    ///
    /// # Errors
    /// [`ClusterError`] when it does not come up.
    pub fn restart(&self) -> Result<(), ClusterError> {
        self.launch()
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        self.run(
            "initdb",
            &[
                "-D",
                &dir,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        )
        .map(drop)
    }

    fn launch(&self) -> Result<(), ClusterError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        let log = self.data_dir.join("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port, dir
        );
        let log_arg = log.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &[
                "start", "-D", &dir, "-l", &log_arg, "-o", &options, "-w", "-t", "60",
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ClusterError::Timeout(Duration::from_secs(30), log))
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin.join(tool));
        command
            .args(args)
            .stdin(Stdio::null())
            .current_dir(&self.data_dir);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Runs a PostgreSQL tool; its standard output on success.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String, ClusterError> {
        let out = self.command(tool, args).output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(ClusterError::Tool {
                tool: tool.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| has_all(d)) {
        // Follow a symlinked initdb to its installation, which also has psql.
        let real = dir.join("initdb").canonicalize().ok();
        return real
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_all(d))
            .or(Some(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has_all(d))
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    // The owner of /proc/self is this process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32), ClusterError> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| ClusterError::Tool {
            tool: "setup".into(),
            output: "running as root needs a `postgres` system user to run the cluster as".into(),
        })
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// The `postgres` user must be able to reach its data directory: adds search (`o+x`, not
/// read) permission to ancestors that lack it, e.g. a private temporary directory.
fn make_ancestors_traversable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor)?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o001))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_restarts_a_real_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = PgCluster::start(&tmp.path().join("pg"), None).unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());
        cluster.stop().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_err());
        cluster.restart().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());
        assert!(
            cluster
                .superuser_url("postgres")
                .starts_with("postgres://postgres@127.0.0.1:")
        );
        let urls = cluster.provision("gatehouse").unwrap();
        assert_eq!(
            urls,
            cluster.provision("gatehouse").unwrap(),
            "provisioning twice is harmless"
        );
        assert!(urls.app_url.contains("gatehouse_app@"));
        let app_is_plain = cluster
            .query_one(
                "postgres",
                "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'gatehouse_app'",
            )
            .unwrap();
        assert_eq!(app_is_plain.trim(), "f");
    }
}
